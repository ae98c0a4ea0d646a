"""MedSeg: nnU-Net-quality 3D medical image segmentation for ChimeraX and the command line.

Importing this package needs neither ChimeraX nor torch; the ChimeraX entry point
(``bundle_api``) exists only when ChimeraX is importable.
"""
__version__ = "0.1.0"

try:  # inside ChimeraX (or a headless ChimeraX session)
    from chimerax.core.toolshed import BundleAPI as _BundleAPI
except Exception:  # plain Python: no ChimeraX
    _BundleAPI = None

if _BundleAPI is not None:
    class _MedSegAPI(_BundleAPI):
        api_version = 1

        @staticmethod
        def register_command(bundle_info, command_info, logger):
            from . import cmd
            cmd.register_commands(logger)

    bundle_api = _MedSegAPI()

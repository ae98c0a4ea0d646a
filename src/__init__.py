"""MedSeg: nnU-Net-quality 3D medical image segmentation for ChimeraX and the command line.

Importing this package needs neither ChimeraX nor torch. ChimeraX's toolshed asks for
``bundle_api``, which is built on first access (module ``__getattr__``), so ChimeraX is
imported only inside ChimeraX.
"""
import os

__version__ = "0.1.0"

# PyTorch's CPU allocator backs large tensors with transparent huge pages when this is set before
# torch is imported: a fresh 256 MB feature map then costs ~20 ms of page faults instead of ~90 ms,
# on every tile. Users can still set it to 0; where torch is already imported it has no effect.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")


def _make_bundle_api():
    from chimerax.core.toolshed import BundleAPI

    class _MedSegAPI(BundleAPI):
        api_version = 1

        @staticmethod
        def register_command(bundle_info, command_info, logger):
            # Called lazily the first time any "segment ..." command is typed.
            from .chimerax_ui import register_commands
            register_commands(logger)

        @staticmethod
        def start_tool(session, bundle_info, tool_info):
            # The panel (Tools menu, or `segment panel`); needs ChimeraX's window (Qt).
            from .chimerax_ui.panel_tool import MedSegPanel
            return MedSegPanel(session, tool_info.name)

    return _MedSegAPI()


def __getattr__(name):
    if name == "bundle_api":
        api = globals()["bundle_api"] = _make_bundle_api()
        return api
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

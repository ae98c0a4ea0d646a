"""A headless ChimeraX session from the pip ``chimerax`` wheel (ChimeraX core 1.7.1).

Real ChimeraX never needs this module: it builds its own session, so it is not part of the
package. The tests (tests/chimerax_ui) and the demo's picture (``scripts/render_example.py``) use it
to run the bundle's commands in a plain Python process, with no display; it sits in scripts/
because the demo needs it. What the wheel lacks is supplied here:

- its ``chimerax/__init__.py`` imports ~150 sub-packages and fails, so the ``chimerax``
  package object is created without running that file;
- ``chimerax.core.nogui`` is missing, so a small stand-in UI is registered;
- the wheel declares no bundles, so the few built-in commands we use (``volume``,
  ``segmentation``, ``close``, ...) are registered by calling their bundles directly.

Third-party bundles (this one) are still found the real way: by the toolshed, from the
classifiers of their installed distribution.
"""
from __future__ import annotations

import importlib.util
import os
import site
import sys
import tempfile
import types
import weakref
from pathlib import Path
from typing import Any, Iterable

# Built-in commands a session gets: command name -> the built-in package whose
# ``bundle_api.register_command`` provides it.
BUILTIN_COMMANDS = {
    "volume": "chimerax.map",
    "segmentation": "chimerax.segment",
    "close": "chimerax.std_commands",
    "view": "chimerax.std_commands",
    "lighting": "chimerax.std_commands",
    "color": "chimerax.std_commands",
    "hide": "chimerax.std_commands",
    "show": "chimerax.std_commands",
    "turn": "chimerax.std_commands",
}


def import_chimerax_package() -> types.ModuleType:
    """Make ``import chimerax.x`` work without executing the wheel's broken ``__init__``."""
    module = sys.modules.get("chimerax")
    if module is not None:
        return module
    spec = importlib.util.find_spec("chimerax")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("The 'chimerax' wheel is not installed (see scripts/setup_chimerax_env.sh).")
    module = importlib.util.module_from_spec(spec)  # a package object; its code is never run
    sys.modules["chimerax"] = module
    _alias_collections_abc()
    return module


def _alias_collections_abc() -> None:
    """grako (the atom-spec parser's dependency) still uses pre-3.10 ``collections.X`` names."""
    import collections
    import collections.abc
    for name in ("Mapping", "MutableMapping", "Callable", "Iterable", "Sequence"):
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))


def chimerax_available() -> bool:
    """True when the ChimeraX wheel (or real ChimeraX) is importable here."""
    if "chimerax.core" in sys.modules:
        return True
    spec = importlib.util.find_spec("chimerax")
    return bool(spec and spec.submodule_search_locations and
                any((Path(p) / "core" / "session.py").is_file() for p in spec.submodule_search_locations))


class CapturedMessage(tuple):
    """(level, text, is_html) of one log message."""

    @property
    def level(self) -> int:
        return self[0]

    @property
    def text(self) -> str:
        return self[1]

    @property
    def is_html(self) -> bool:
        return self[2]


def _make_capture_log_class():
    from chimerax.core.logger import HtmlLog

    class CaptureLog(HtmlLog):
        """Keeps every log and status message (HTML kept as HTML); optionally echoes them."""

        excludes_other_logs = False

        def __init__(self, echo: bool = False):
            super().__init__()
            self.messages: list[CapturedMessage] = []
            self.statuses: list[str] = []
            self.echo = echo

        def log(self, level, msg, image_info, is_html):
            self.messages.append(CapturedMessage((level, msg, is_html)))
            if self.echo or level >= self.LEVEL_ERROR:
                from chimerax.core.logger import html_to_plain
                text = html_to_plain(msg) if is_html else msg
                print(text, end="" if text.endswith("\n") else "\n", file=sys.stderr)
            return True

        def status(self, msg, color, secondary):
            if msg:
                self.statuses.append(msg)
            return True

        def text(self, min_level: int = 0) -> str:
            """All messages at or above ``min_level`` joined, HTML as written."""
            return "".join(m.text for m in self.messages if m.level >= min_level)

        def clear(self) -> None:
            self.messages.clear()
            self.statuses.clear()

    return CaptureLog


def _install_nogui_module() -> None:
    """Register a minimal ``chimerax.core.nogui`` (the wheel lacks it)."""
    if "chimerax.core.nogui" in sys.modules:
        return
    from chimerax.core.logger import PlainTextLog

    class UI:
        is_gui = False
        has_graphics = False
        stereo = False
        autostart_tools = False
        main_window = None

        def __init__(self, session):
            self._session = weakref.ref(session)

        def thread_safe(self, func, *args, **kw):
            # No event loop: the caller runs on the only thread that delivers results.
            func(*args, **kw)

        def initialize_offscreen_rendering(self):
            from chimerax import graphics
            session = self._session()
            context = graphics.OffScreenRenderingContext()
            session.main_view.initialize_rendering(context)
            self.has_graphics = True

        def initialize_color_output(self, *args, **kw):
            pass

        def splash_info(self, *args, **kw):
            pass

        def build(self, *args, **kw):
            pass

        def event_loop(self):
            pass

        def quit(self, *args, **kw):
            pass

    class NoGuiLog(PlainTextLog):
        def log(self, level, msg):
            print(msg, end="", file=sys.stderr)
            return True

    module = types.ModuleType("chimerax.core.nogui")
    module.UI, module.NoGuiLog = UI, NoGuiLog
    sys.modules["chimerax.core.nogui"] = module
    import chimerax.core
    chimerax.core.nogui = module


def _set_app_dirs(home: Path) -> None:
    """Point ChimeraX's per-user folders (settings, toolshed cache) into ``home``."""
    for var, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data"),
                     ("XDG_CACHE_HOME", "cache"), ("XDG_STATE_HOME", "state")):
        os.environ[var] = str(home / sub)
        (home / sub).mkdir(parents=True, exist_ok=True)
    site.USER_SITE = str(home / "user-site")
    import appdirs
    import chimerax
    chimerax.app_dirs = appdirs.AppDirs("ChimeraX", "UCSF", version="1.7")
    chimerax.app_dirs_unversioned = appdirs.AppDirs("ChimeraX", "UCSF")
    root = Path(chimerax.__path__[0])
    chimerax.app_data_dir = str(root / "share")
    chimerax.app_bin_dir = str(Path(sys.executable).parent)
    chimerax.app_lib_dir = str(root / "lib")


def register_builtin_commands(session, names: Iterable[str] = BUILTIN_COMMANDS) -> None:
    """Register built-in ChimeraX commands (the wheel declares no bundles that would)."""
    for name in names:
        package = importlib.import_module(BUILTIN_COMMANDS[name])
        package.bundle_api.register_command(name, session.logger)


def start_session(home: str | os.PathLike | None = None, offscreen: bool = False,
                  echo: bool = False) -> Any:
    """Create a headless ChimeraX session with this bundle discoverable by the toolshed.

    Args:
        home: folder for ChimeraX's per-user files (default: a new temporary folder).
        offscreen: set up OSMesa offscreen rendering (needs libOSMesa and PyOpenGL).
        echo: also print log messages to stderr.

    Returns the session; ``session.capture_log`` holds every log and status message.
    """
    if offscreen:
        os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    home = Path(home) if home is not None else Path(tempfile.mkdtemp(prefix="medseg-chimerax-"))
    import_chimerax_package()
    _alias_collections_abc()
    _set_app_dirs(home)
    _install_nogui_module()

    from chimerax.core import attributes, core_settings, toolshed
    from chimerax.core.session import Session, register_misc_commands
    session = Session("ChimeraX", offscreen_rendering=offscreen)
    sys.excepthook = sys.__excepthook__  # ChimeraX's hook turns errors into a silent exit
    core_settings.init(session)
    register_misc_commands(session)
    attributes.RegAttrManager(session)
    session.capture_log = _make_capture_log_class()(echo=echo)
    session.logger.add_log(session.capture_log)

    import chimerax.surface
    chimerax.surface.bundle_api.initialize(session, None)  # its settings are used when drawing

    # An unreachable toolshed URL keeps everything local; bundles come from installed metadata.
    # The scan must see installed distributions only, not a stale *.egg-info in the current
    # folder (a source checkout's root is on sys.path under `python -m pytest`).
    saved_path = list(sys.path)
    cwd = os.path.realpath(os.getcwd())
    sys.path[:] = [p for p in sys.path if p and os.path.realpath(p) != cwd]
    try:
        toolshed.init(session.logger, check_available=False, remote_url="http://127.0.0.1:9/",
                      session=session)
    finally:
        sys.path[:] = saved_path
    session.toolshed = toolshed.get_toolshed()
    session.toolshed.bootstrap_bundles(session, False)
    from chimerax.core import tools, undo
    session.tools = tools.Tools(session, first=True)
    session.undo = undo.Undo(session, first=True)  # commands such as `view` record undo steps
    register_builtin_commands(session)
    return session


def add_volume(session, array, origin=(0, 0, 0), step=(1, 1, 1), rotation=None, name: str = "volume"):
    """Open a numpy (z, y, x) array as a ChimeraX volume; origin/step are in (x, y, z) order."""
    import numpy as np
    from chimerax.map import volume_from_grid_data
    from chimerax.map_data import ArrayGridData
    kw = {} if rotation is None else {"rotation": tuple(map(tuple, np.asarray(rotation, float)))}
    grid = ArrayGridData(np.ascontiguousarray(array), origin=tuple(map(float, origin)),
                         step=tuple(map(float, step)), name=name, **kw)
    volume = volume_from_grid_data(grid, session, show_dialog=False)
    session.update_loop.draw_new_frame()  # avoids a KeyError from the "graphics update" trigger
    return volume

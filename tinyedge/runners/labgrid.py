"""A board in a labgrid farm: :class:`LabgridPlaceRunner` acquires a labgrid *place*, reaches the board's
UART through the place's ``NetworkSerialPort`` (raw TCP → ``socket://``, RFC 2217 → ``rfc2217://``) and
releases the place when it stops, also on an error or Ctrl-C.

labgrid (PyPI ``labgrid``, the ``farm`` extra) does the farm: its coordinator (``labgrid-coordinator``,
gRPC, default port 20408) holds the places and their locks, exporters publish the resources (a board's
serial port through ser2net, power switches, debuggers), and a client acquires a place before using it.
tinyedge is such a client (labgrid's own ``ClientSession``); it never takes a place someone else holds:
it waits up to its deadline, then names the holder.

Per place:

- **serial**: the place's ``NetworkSerialPort`` (when it has several, the one named ``console`` or
  ``uart``, else the first by name), reached directly at the host and port the exporter published.
- **power/reset**: a ``NetworkPowerPort``, ``PDUDaemonPort`` or ``TasmotaPowerPort`` is power-cycled
  after flashing, so the firmware boots fresh; a place without one is left as it is.
- **flashing**: labgrid has no driver tinyedge can use for these microcontrollers without a per-board
  OpenOCD configuration, so a real board on a place must be flashed on its exporter host
  (``tinyedge flash``) and is then scored with ``--place``; :meth:`LabgridPlaceRunner.start` says so.
- **emulated boards** (a QEMU instance whose UART an exporter publishes) have nothing to flash or power:
  the firmware is the one the exporter host started; ``tinyedge score`` checks through ``te-info`` that
  it runs the same model (a different model is a ModelMismatchError, not a wrong figure).

A place names its board with the tag ``board=<board id>`` (``labgrid-client -p NAME set-tags
board=qemu-mps2-an386``); ``tinyedge matrix --places 'farm=ci'`` runs each board on a matching place.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from ..boards import Board
from ..errors import BoardError, LinkError, ToolError

log = logging.getLogger("tinyedge.labgrid")

#: labgrid's own default (``labgrid-client``, ``labgrid-exporter``): ``LG_COORDINATOR`` or this.
DEFAULT_COORDINATOR = "127.0.0.1:20408"
#: Seconds a runner waits for a place someone else holds before it gives up (``--place-wait``).
DEFAULT_PLACE_WAIT = 120.0
#: The tag that names the board a place holds.
BOARD_TAG = "board"
LABGRID_HINT = "install the farm extra: pip install 'tinyedge[farm]' (labgrid)"
#: Power resources tinyedge drives, with the labgrid driver for each.
POWER_DRIVERS = {"NetworkPowerPort": "NetworkPowerDriver", "PDUDaemonPort": "PDUDaemonDriver",
                 "TasmotaPowerPort": "TasmotaPowerDriver"}
#: Seconds for one request to the coordinator.
RPC_TIMEOUT = 15.0

T = TypeVar("T")


def coordinator_address(coordinator: str | None = None) -> str:
    """``coordinator``, else ``$LG_COORDINATOR`` (as labgrid-client), else 127.0.0.1:20408."""
    return coordinator or os.environ.get("LG_COORDINATOR") or DEFAULT_COORDINATOR


def parse_tags(spec: str) -> dict[str, str]:
    """``'farm=ci,board=qemu-mps2-an386'`` → ``{"farm": "ci", "board": "qemu-mps2-an386"}``."""
    tags: dict[str, str] = {}
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise BoardError(f"'{item}' in --places '{spec}' is not a tag filter",
                             "write KEY=VALUE pairs separated by commas, e.g. --places 'farm=ci'")
        tags[key.strip()] = value.strip()
    if not tags:
        raise BoardError("--places needs at least one tag", "e.g. --places 'farm=ci' (labgrid-client set-tags)")
    return tags


def serial_url(cls: str, args: dict[str, Any]) -> str | None:
    """The pyserial URL of a labgrid serial resource (None for other resources)."""
    if cls != "NetworkSerialPort" or not args.get("host") or not args.get("port"):
        return None
    host = str(args["host"])
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    scheme = "socket" if str(args.get("protocol", "rfc2217")) == "raw" else "rfc2217"
    return f"{scheme}://{host}:{int(args['port'])}"


@dataclass(frozen=True)
class PlaceInfo:
    """A labgrid place as the coordinator describes it."""

    name: str
    tags: dict[str, str] = field(default_factory=dict)
    acquired: str | None = None
    comment: str = ""

    @property
    def board(self) -> str | None:
        """The board id of the ``board`` tag, if any."""
        return self.tags.get(BOARD_TAG)


# -- one event loop for every labgrid session of this process -------------------------------------------
# labgrid's client is asyncio + grpc.aio, which binds a channel to one loop; the runners of a parallel
# matrix run in worker threads, so they all submit to this loop, which runs in a daemon thread.
_loop_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _event_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="tinyedge-labgrid", daemon=True).start()
            _loop = loop
        return _loop


def _call(coro: Coroutine[Any, Any, T], what: str, timeout: float = RPC_TIMEOUT) -> T:
    """Run ``coro`` on the labgrid loop and wait for its result; LinkError after ``timeout`` seconds."""
    future = asyncio.run_coroutine_threadsafe(coro, _event_loop())
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise LinkError(f"labgrid: {what} took longer than {timeout:g} s",
                        "check that the coordinator runs and is reachable (labgrid-client places)") from None
    except BaseException:
        future.cancel()  # Ctrl-C while waiting: do not leave the request running
        raise


def _rpc_problem(exc: BaseException) -> tuple[str, str]:
    """(status code name, details) of a gRPC error, ("", text) of anything else."""
    code = getattr(exc, "code", None)
    details = getattr(exc, "details", None)
    if callable(code) and callable(details):
        return getattr(code(), "name", str(code())), str(details())
    return "", str(exc)


class FarmClient:
    """A handle on this process's labgrid client session with a coordinator (labgrid's ``ClientSession``);
    close it after use.

    The handles of one coordinator share one session: gRPC shares the TCP connection of channels with the
    same target, and the coordinator allows one session per connection. The session closes with the last
    handle.
    """

    _lock = threading.Lock()
    _shared: dict[str, tuple[Any, int]] = {}  # coordinator → (session, handles)

    def __init__(self, coordinator: str | None = None) -> None:
        self.coordinator = coordinator_address(coordinator)
        with FarmClient._lock:
            session, handles = FarmClient._shared.get(self.coordinator, (None, 0))
            if session is None or session.stopping.is_set():
                session = _call(self._open(), f"connecting to the coordinator at {self.coordinator}")
                handles = 0
            FarmClient._shared[self.coordinator] = (session, handles + 1)
        self._session: Any = session

    async def _open(self) -> Any:
        try:
            from labgrid.remote.client import ClientSession  # noqa: PLC0415 - optional heavy dependency
            from labgrid.util.proxy import proxymanager  # noqa: PLC0415
        except ImportError:
            raise ToolError("labgrid is not installed: --place and --places need it", LABGRID_HINT) from None
        address = proxymanager.get_grpc_address(self.coordinator, default_port=20408)
        session = ClientSession(address, asyncio.get_running_loop())
        try:
            await session.start()
        except Exception as exc:
            await self._shutdown(session)
            raise LinkError(f"cannot reach the labgrid coordinator at {self.coordinator}: {_rpc_problem(exc)[1]}",
                            "start it (labgrid-coordinator -l HOST:PORT) or pass --coordinator HOST:PORT "
                            "(default: $LG_COORDINATOR, else 127.0.0.1:20408)") from None
        return session

    @staticmethod
    async def _shutdown(session: Any) -> None:
        try:
            await session.stop()
        except Exception:  # the stream may already be gone; closing the channel is what matters
            pass
        await session.close()

    @property
    def identity(self) -> str:
        """How the coordinator knows this client: ``host/user`` (``LG_HOSTNAME``/``LG_USERNAME`` override)."""
        return f"{self._session.gethostname()}/{self._session.getuser()}"

    async def _places(self) -> dict[str, PlaceInfo]:
        await self._session.sync_with_coordinator()
        return {name: PlaceInfo(name, dict(p.tags), p.acquired or None, p.comment or "")
                for name, p in self._session.places.items()}

    def places(self) -> dict[str, PlaceInfo]:
        """Every place of the coordinator, by name."""
        return _call(self._places(), "listing places")

    def place(self, name: str) -> PlaceInfo:
        """The place ``name``; BoardError naming the known places when there is none."""
        places = self.places()
        if name not in places:
            known = ", ".join(sorted(places)) or "none"
            raise BoardError(f"the labgrid coordinator at {self.coordinator} has no place '{name}' (places: {known})",
                             "create it with labgrid-client -p NAME create, or pick one of the places listed")
        return places[name]

    def find(self, tags: dict[str, str]) -> list[PlaceInfo]:
        """The places whose tags include all of ``tags``, by name."""
        return [p for _, p in sorted(self.places().items())
                if all(p.tags.get(k) == v for k, v in tags.items())]

    async def _acquire(self, name: str) -> tuple[str, str]:
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb  # noqa: PLC0415

        try:
            await self._session.stub.AcquirePlace(pb.AcquirePlaceRequest(placename=name))
        except Exception as exc:
            return _rpc_problem(exc)
        await self._session.sync_with_coordinator()
        return "", ""

    def try_acquire(self, name: str) -> tuple[bool, str]:
        """Ask the coordinator for ``name``: (True, "") when acquired, else (False, why)."""
        code, details = _call(self._acquire(name), f"acquiring place {name}")
        if code == "" and details == "":
            return True, ""
        return False, f"{code}: {details}" if code else details

    async def _release(self, name: str) -> None:
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb  # noqa: PLC0415

        await self._session.stub.ReleasePlace(pb.ReleasePlaceRequest(placename=name))
        await self._session.sync_with_coordinator()

    def release(self, name: str) -> None:
        """Release ``name`` (which this client holds)."""
        _call(self._release(name), f"releasing place {name}")

    async def _resources(self, name: str) -> list[tuple[str, str, dict[str, Any]]]:
        await self._session.sync_with_coordinator()
        place = self._session.places[name]
        entries = self._session.get_target_resources(place)  # checks that this client holds the place
        return [(res_name, cls, dict(entry.args)) for (res_name, cls), entry in sorted(entries.items())]

    def resources(self, name: str) -> list[tuple[str, str, dict[str, Any]]]:
        """(name, class, arguments) of each resource of the place ``name``, which this client holds."""
        return _call(self._resources(name), f"reading the resources of place {name}")

    def close(self) -> None:
        """Drop this handle; the last one ends the session (idempotent)."""
        if self._session is None:
            return
        session, self._session = self._session, None
        with FarmClient._lock:
            shared, handles = FarmClient._shared.get(self.coordinator, (None, 0))
            if shared is not session:
                return  # a session that failed was replaced: it is closed below only if no handle holds it
            if handles > 1:
                FarmClient._shared[self.coordinator] = (session, handles - 1)
                return
            del FarmClient._shared[self.coordinator]
        try:
            _call(self._shutdown(session), "closing the labgrid session", timeout=5.0)
        except Exception as exc:  # closing must not hide the error that brought us here
            log.debug("closing the labgrid session: %s", exc)


def find_places(tags: str | dict[str, str], coordinator: str | None = None) -> list[PlaceInfo]:
    """The places of ``coordinator`` whose tags include ``tags`` (``'farm=ci'`` or a dict), by name."""
    client = FarmClient(coordinator)
    try:
        return client.find(parse_tags(tags) if isinstance(tags, str) else tags)
    finally:
        client.close()


class LabgridPlaceRunner:
    """The :class:`~tinyedge.runners.core.Runner` for a board in a labgrid farm.

    >>> with LabgridPlaceRunner("nucleo-1", coordinator="farm:20408", board=board) as runner:
    ...     url = runner.connect()          # acquire; rfc2217://exporter:port (score, monitor)
    ...     url = runner.start(project)     # acquire, flash (if it can), power-cycle (deploy)

    Acquiring waits up to ``wait`` seconds for a place someone else holds (polling every
    ``poll`` seconds), then fails with a LinkError naming the holder; the place is never taken from
    them. :meth:`stop` (also on exit from the ``with`` block, on an error or Ctrl-C) releases the place
    if this runner acquired it.
    """

    def __init__(self, place: str, *, coordinator: str | None = None, board: Board | None = None,
                 wait: float = DEFAULT_PLACE_WAIT, poll: float = 0.5,
                 say: Callable[[str], None] | None = None) -> None:
        if not place or not place.strip():
            raise BoardError("--place needs a place name", "list them with labgrid-client places")
        self.place = place.strip()
        self.coordinator = coordinator_address(coordinator)
        self.board = board
        self.wait = wait
        self.poll = poll
        self._say = say or log.info
        self._client: FarmClient | None = None
        self._held = False
        self._url: str | None = None
        self.resources: list[tuple[str, str, dict[str, Any]]] = []

    def describe(self) -> str:
        """What :meth:`start` does, for progress messages."""
        return f"farm: labgrid place {self.place} (coordinator {self.coordinator})"

    # -- acquire / release ------------------------------------------------------------------------
    def connect(self) -> str:
        """Acquire the place (waiting for it up to the deadline) and return its UART's pyserial URL."""
        if self._url is not None:
            return self._url
        client = self._client = self._client or FarmClient(self.coordinator)
        info = client.place(self.place)
        if self.board is not None and info.board is not None and info.board != self.board.id:
            raise BoardError(f"labgrid place {self.place} holds board {info.board}, not {self.board.id}",
                             f"pick a place tagged board={self.board.id}, or build for {info.board}")
        self._acquire(client)
        self.resources = client.resources(self.place)
        serial = [(n, serial_url(cls, args)) for n, cls, args in self.resources if serial_url(cls, args)]
        if not serial:
            classes = ", ".join(sorted({cls for _, cls, _ in self.resources})) or "none"
            raise BoardError(f"labgrid place {self.place} has no NetworkSerialPort (its resources: {classes})",
                             "add the board's serial port to the place: labgrid-client -p NAME add-match "
                             "EXPORTER/GROUP/NetworkSerialPort")
        preferred = [u for n, u in serial if n in ("console", "uart")]
        self._url = str((preferred or [u for _, u in serial])[0])
        return self._url

    def _acquire(self, client: FarmClient) -> None:
        deadline = time.monotonic() + self.wait
        told = False
        while True:
            info = client.place(self.place)
            if info.acquired is None:
                self._held = True  # from here on stop() checks, in case Ctrl-C lands mid-request
                ok, why = client.try_acquire(self.place)
                if ok:
                    self._say(f"acquired labgrid place {self.place}")
                    return
                self._held = False
                log.debug("acquiring %s failed: %s", self.place, why)
                if "does not exist" in why:
                    raise BoardError(f"labgrid place {self.place} cannot be acquired: {why}",
                                     "check the place name (labgrid-client places)")
                info = client.place(self.place)
            holder = info.acquired or "a reservation of another user"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                mine = " (this host and user: a run that did not finish?)" if holder == client.identity else ""
                raise LinkError(
                    f"labgrid place {self.place} is held by {holder}{mine}; waited {self.wait:g} s for it",
                    f"try again when it is free (labgrid-client -p {self.place} show names the holder), pass a longer "
                    "--place-wait, or pick another place; tinyedge never takes a place from its holder")
            if not told:
                self._say(f"labgrid place {self.place} is held by {holder}: waiting up to {self.wait:g} s")
                told = True
            time.sleep(min(self.poll, remaining))

    def stop(self) -> None:
        """Release the place if this runner acquired it, then close the session (idempotent)."""
        client, self._client = self._client, None
        self._url = None
        if client is None:
            return
        try:
            if self._held:
                try:
                    if client.place(self.place).acquired == client.identity:
                        client.release(self.place)
                        self._say(f"released labgrid place {self.place}")
                except Exception as exc:  # a failed release must not hide the error that brought us here
                    log.warning("could not release labgrid place %s: %s (labgrid-client -p %s release)",
                                self.place, exc, self.place)
        finally:
            self._held = False
            client.close()

    # -- power / flashing -------------------------------------------------------------------------
    def power_cycle(self) -> bool:
        """Power-cycle the board through the place's power resource; False when it has none."""
        for name, cls, args in self.resources:
            if cls in POWER_DRIVERS:
                from labgrid import Target, target_factory  # noqa: PLC0415 - optional heavy dependency

                target = Target(f"tinyedge-{self.place}")
                target_factory.make_resource(target, cls, name, dict(args))
                driver = target_factory.make_driver(target, POWER_DRIVERS[cls], None, {})
                target.activate(driver)
                try:
                    driver.cycle()
                finally:
                    target.deactivate_all_drivers()
                self._say(f"power-cycled labgrid place {self.place} ({cls} {name})")
                return True
        return False

    def flash_error(self) -> BoardError:
        """Why :meth:`flash` cannot flash this place's board (labgrid has no driver tinyedge can use yet)."""
        if self.board is not None and self.board.qemu is not None:
            return BoardError(f"labgrid place {self.place} is an emulated board: its exporter host starts its "
                              "firmware, there is nothing to flash",
                              "start QEMU with the firmware on the exporter host (tinyedge emulate PROJECT), then "
                              "score it with --place")
        return BoardError(f"labgrid place {self.place} has no flashing driver tinyedge can use",
                          "flash the board on its exporter host (tinyedge flash PROJECT --upload-port PORT), then "
                          "score it with tinyedge score --place")

    def flash(self, project_dir: Path) -> None:
        """Flash ``project_dir``'s firmware onto the place's board: not possible through labgrid yet."""
        raise self.flash_error()

    def start(self, project_dir: Path) -> str:
        """Acquire the place; flash (real boards) and power-cycle the board; the UART's URL.

        An emulated board on a place runs what its exporter host started: nothing is loaded, and
        ``tinyedge score`` checks through te-info that it runs the model of ``project_dir``.
        """
        url = self.connect()
        if self.board is None or self.board.qemu is None:
            self.flash(Path(project_dir))
        self.power_cycle()
        return url

    @property
    def url(self) -> str:
        """The UART's pyserial URL (after :meth:`connect` or :meth:`start`)."""
        if self._url is None:
            raise ToolError(f"labgrid place {self.place} is not acquired", "call connect() or start() first")
        return self._url

    def __enter__(self) -> LabgridPlaceRunner:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

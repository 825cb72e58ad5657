"""ModalRunner against modal's real `App.run(detach=True)`, with only the network stubbed.

The App, its functions, `modal.FunctionCall.from_id`, `Function.spawn`, `FunctionCall.get` and the
detached run's own handling of Ctrl-C are modal 1.6.4's code. What is replaced is what would talk
to Modal's servers: the runner's RPC helpers (create the app, create its objects, publish, heartbeat,
logs, disconnect), the FunctionMap RPC behind `spawn` (`_Invocation.create`) and the
FunctionGetOutputs polling behind `get` (`_Invocation.poll_function`). The fake server answers each
wait on a call from a script: a result, the call's own exception, a lost connection, or a Ctrl-C
(a real SIGINT to this process while the main thread waits, as a user's Ctrl-C arrives).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import types
from pathlib import Path

import modal
import modal.exception
import modal.runner
import pytest
from modal import _functions as modal_functions
from modal.client import _Client
from modal.running_app import RunningApp
from modal_proto import api_pb2

from szflow.config import load_params
from szflow.errors import SzflowError
from szflow.remote.modal_app import ModalRunner, build_app

REPO = Path(__file__).resolve().parents[1]
INTERRUPT = "ctrl-c"
STILL_RUNNING = "running"  # a wait that ends without a result (what modal's get(timeout=...) raises)
JOB = {"stage": "train", "run_key": "0123456789abcdef01234567", "version": 1}
RESULT = {"stage": "train", "run_key": JOB["run_key"], "result": {"best_step": 8}, "outputs": {}}


class _NoNetwork:
    """The client's gRPC stub: any RPC this test did not stub fails loudly instead of dialling out."""

    def __getattr__(self, name):
        raise AssertionError(f"unstubbed Modal RPC {name}")


class FakeModalServer:
    """What Modal's servers would answer: apps, spawned calls, and each wait on a call."""

    def __init__(self):
        self.apps: list[str] = []
        self.spawned: list[tuple[str, dict]] = []
        self.waits: list[str] = []
        self.disconnects: list[int] = []
        self.cancelled: list[str] = []
        # call id -> what its successive waits return: a value, an exception, or INTERRUPT
        self.answers: dict[str, list] = {}

    def next_answer(self, call_id: str):
        answers = self.answers.get(call_id)
        if answers is None:
            return modal.exception.NotFoundError(f"Function call {call_id} not found")
        return answers.pop(0) if len(answers) > 1 else answers[0]


@pytest.fixture
def server(monkeypatch, tmp_path):
    fake = FakeModalServer()
    client = _Client("https://modal.invalid", api_pb2.CLIENT_TYPE_CLIENT, None)
    client._control_plane_stub = _NoNetwork()

    async def init_local_app_new(client, description, tags, app_state, environment_name="", interactive=False):
        assert app_state == api_pb2.APP_STATE_DETACHED
        app_id = f"ap-test{len(fake.apps)}"
        fake.apps.append(app_id)
        return RunningApp(app_id, app_page_url=f"https://modal.invalid/apps/{app_id}")

    async def create_all_objects(running_app, local_app_state, load_context, output_mgr):
        # What the server's FunctionCreate answers end in: every function hydrated with an id.
        for tag, function in local_app_state.functions.items():
            metadata = api_pb2.FunctionHandleMetadata(function_name=tag,
                                                      function_type=api_pb2.Function.FUNCTION_TYPE_FUNCTION)
            function._hydrate(f"fu-{tag}", load_context.client, metadata)
            running_app.function_ids[tag] = function.object_id

    async def nothing(*args, **kwargs):
        return None

    async def disconnect(client, app_id, reason, exc_str=""):
        fake.disconnects.append(reason)

    async def create_invocation(function, args, kwargs, *, client, function_call_invocation_type,
                                from_spawn_map=False):
        call_id = f"fc-test{len(fake.spawned)}"
        fake.spawned.append((call_id, args[0]))
        return modal_functions._Invocation(client._stub, call_id, client)

    async def poll_function(invocation, timeout=None, *, index=0):
        fake.waits.append(invocation.function_call_id)
        answer = fake.next_answer(invocation.function_call_id)
        if answer == INTERRUPT:
            os.kill(os.getpid(), signal.SIGINT)  # the user's Ctrl-C, delivered to the main thread
            await asyncio.sleep(60)
            raise AssertionError("the interrupt did not arrive")
        if answer == STILL_RUNNING:
            raise TimeoutError()
        if isinstance(answer, BaseException):
            raise answer
        return answer

    monkeypatch.setattr(modal.runner, "_init_local_app_new", init_local_app_new)
    monkeypatch.setattr(modal.runner, "_create_all_objects", create_all_objects)
    monkeypatch.setattr(modal.runner, "_publish_app", nothing)
    monkeypatch.setattr(modal.runner, "_heartbeat", nothing)
    monkeypatch.setattr(modal.runner, "get_app_logs_loop", nothing)
    monkeypatch.setattr(modal.runner, "_disconnect", disconnect)
    monkeypatch.setattr(modal_functions._Invocation, "create", staticmethod(create_invocation))
    monkeypatch.setattr(modal_functions._Invocation, "poll_function", poll_function)
    # A process started in the background (nohup, `cmd &`, some CI runners) inherits SIGINT ignored,
    # and then Python never turns it into KeyboardInterrupt: give the test the terminal's behaviour.
    previous_sigint = signal.signal(signal.SIGINT, signal.default_int_handler)
    _Client._set_env_client(client)
    yield fake
    _Client._set_env_client(None)
    signal.signal(signal.SIGINT, previous_sigint)


@pytest.fixture
def runner(tmp_path):
    params = load_params(REPO, hw="a100")
    return ModalRunner(build_app(params), tmp_path, reattach_tries=3, backoff_s=0.0)


def _record(runner: ModalRunner) -> dict | None:
    path = runner.record_path(JOB)
    return json.loads(path.read_text()) if path.exists() else None


def test_finished_call_result_is_collected(server, runner):
    server.answers["fc-test0"] = [RESULT]
    assert runner.run(JOB) == RESULT
    assert [call for call, _ in server.spawned] == ["fc-test0"]
    assert server.spawned[0][1] == JOB
    assert server.apps == ["ap-test0"]
    assert server.disconnects == [api_pb2.APP_DISCONNECT_REASON_ENTRYPOINT_COMPLETED]
    assert _record(runner) is None


def test_ctrl_c_keeps_the_call_and_the_next_run_reattaches(server, runner):
    server.answers["fc-test0"] = [INTERRUPT, RESULT]
    with pytest.raises(SzflowError) as stopped:
        runner.run(JOB)
    message = str(stopped.value)
    assert "\n" not in message
    assert "interrupted" in message and "fc-test0" in message
    assert "`modal app stop ap-test0`" in message and "run the same command again" in message
    # modal's detached run saw the Ctrl-C itself (and kept the app running).
    assert server.disconnects == [api_pb2.APP_DISCONNECT_REASON_KEYBOARD_INTERRUPT]
    assert _record(runner) == {"call_id": "fc-test0", "app_id": "ap-test0", "stage": "train",
                               "run_key": JOB["run_key"]}

    # The next run waits on the same call: no second app, no second call.
    assert runner.run(JOB) == RESULT
    assert len(server.spawned) == 1 and server.apps == ["ap-test0"]
    assert server.waits == ["fc-test0", "fc-test0"]
    assert _record(runner) is None


def test_ctrl_c_while_reattached_keeps_the_call(server, runner):
    server.answers["fc-test0"] = [INTERRUPT]
    with pytest.raises(SzflowError, match="interrupted"):
        runner.run(JOB)
    with pytest.raises(SzflowError, match=r"interrupted; Modal call fc-test0 keeps running.*modal app stop ap-test0"):
        runner.run(JOB)  # re-attached (no app run), interrupted again
    assert len(server.spawned) == 1
    assert _record(runner)["call_id"] == "fc-test0"


def test_lost_connection_reattaches_and_never_spawns_twice(server, runner, caplog):
    server.answers["fc-test0"] = [modal.exception.ConnectionError("Could not connect to the Modal server."),
                                  modal.exception.ServiceError("UNAVAILABLE"), RESULT]
    caplog.set_level("WARNING", logger="szflow.remote")
    assert runner.run(JOB) == RESULT
    assert len(server.spawned) == 1
    assert server.waits == ["fc-test0"] * 3
    assert sum("lost the connection to Modal" in r.getMessage() for r in caplog.records) == 2
    assert _record(runner) is None


def test_a_wait_that_reaches_the_running_call_resets_the_reattach_count(server, runner):
    """Connection blips hours apart do not add up: only failures in a row end the wait."""
    lost = modal.exception.ConnectionError("Could not connect to the Modal server.")
    server.answers["fc-test0"] = [lost, lost, STILL_RUNNING, lost, lost, STILL_RUNNING, RESULT]
    assert runner.run(JOB) == RESULT  # 3 tries in a row would end it; never more than 2 here
    assert len(server.waits) == 7 and len(server.spawned) == 1


def test_calls_of_earlier_runs_are_reported_while_they_run_and_forgotten_when_done(server, runner, caplog):
    runner.calls_dir.mkdir(parents=True)
    for call_id in ("fc-running", "fc-finished", "fc-unknown"):
        (runner.calls_dir / f"train-{call_id}.json").write_text(json.dumps({"call_id": call_id, "app_id": "ap-x"}))
    (runner.calls_dir / "dev-other.json").write_text(json.dumps({"call_id": "fc-dev", "app_id": "ap-y"}))
    server.answers.update({"fc-running": [STILL_RUNNING], "fc-finished": [RESULT], "fc-test0": [RESULT]})
    caplog.set_level("WARNING", logger="szflow.remote")
    assert runner.run(JOB) == RESULT
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "fc-running" in warnings[0] and "modal app stop ap-x" in warnings[0]
    assert sorted(p.name for p in runner.calls_dir.iterdir()) == ["dev-other.json", "train-fc-running.json"]
    assert len(server.spawned) == 1


def test_connection_lost_for_good_keeps_the_call_for_the_next_run(server, runner):
    server.answers["fc-test0"] = [modal.exception.ConnectionError("Could not connect to the Modal server.")]
    with pytest.raises(SzflowError, match=r"lost the connection to Modal .*fc-test0 keeps running"):
        runner.run(JOB)
    assert server.waits == ["fc-test0"] * 3  # bounded
    assert len(server.spawned) == 1
    assert _record(runner)["call_id"] == "fc-test0"
    server.answers["fc-test0"] = [RESULT]
    assert runner.run(JOB) == RESULT
    assert len(server.spawned) == 1


def test_failed_call_is_reported_and_the_next_run_starts_fresh(server, runner):
    server.answers["fc-test0"] = [SzflowError("training loss is nan at step 12; stopped")]
    with pytest.raises(SzflowError, match=r"Modal call fc-test0 failed: SzflowError: training loss is nan"):
        runner.run(JOB)
    assert _record(runner) is None
    server.answers["fc-test1"] = [RESULT]
    assert runner.run(JOB) == RESULT
    assert [call for call, _ in server.spawned] == ["fc-test0", "fc-test1"]


def test_a_call_that_is_gone_is_replaced(server, runner):
    """A recorded call that Modal no longer knows (or whose result expired) is not running: a new
    call starts (it finds a finished run's outputs on the volume and returns them at once)."""
    runner.record_path(JOB).parent.mkdir(parents=True)
    runner.record_path(JOB).write_text(json.dumps({"call_id": "fc-old", "app_id": "ap-old"}))
    server.answers["fc-test0"] = [RESULT]
    assert runner.run(JOB) == RESULT
    assert server.waits == ["fc-old", "fc-test0"]
    assert [call for call, _ in server.spawned] == ["fc-test0"]
    assert _record(runner) is None


def _exception_raised_in_a_container(exc: BaseException) -> BaseException:
    """`exc` with a traceback through a container frame, as modal re-raises a call's exception."""
    def reraise(error: BaseException) -> None:
        raise error

    # The file name modal gives a container's frames when it rebuilds the remote traceback.
    in_container = types.FunctionType(
        reraise.__code__.replace(co_filename="<ta-01J0000000000000000000000A>:/root/szflow/train/logging.py"), {})
    try:
        in_container(exc)
    except BaseException as raised:  # noqa: BLE001 - handed back to the test
        return raised
    raise AssertionError("not raised")


def test_a_call_that_failed_with_a_connection_error_is_a_failed_call(server, runner):
    """The stage's own ConnectionError (W&B unreachable in the container) is the call's failure, not
    a lost connection of this client: no re-attach loop, the record is cleared."""
    server.answers["fc-test0"] = [_exception_raised_in_a_container(ConnectionError("api.wandb.ai unreachable"))]
    with pytest.raises(SzflowError, match=r"Modal call fc-test0 failed: ConnectionError: api.wandb.ai unreachable"):
        runner.run(JOB)
    assert server.waits == ["fc-test0"]
    assert _record(runner) is None


def test_ctrl_c_before_the_call_started_says_nothing_runs(server, runner, monkeypatch):
    async def interrupted_setup(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the app's objects are being created
        await asyncio.sleep(60)

    monkeypatch.setattr(modal.runner, "_create_all_objects", interrupted_setup)
    with pytest.raises(SzflowError, match="interrupted before its Modal call started; nothing runs on Modal"):
        runner.run(JOB)
    assert server.spawned == [] and _record(runner) is None

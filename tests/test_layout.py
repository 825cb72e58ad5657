"""dvc.yaml and the code name the same paths: every data dep and out of a stage is a path of
szflow.layout, the GPU stage specs agree with their dvc.yaml stages, and each stage depends on its
entry point, its driver and the libraries the driver calls."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from szflow import layout
from szflow.config import SPLITS, STAGE_PARAMS, SharedParams, load_params, stage_snapshot
from szflow.remote.specs import GPU_STAGES

REPO = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
CODE_PREFIXES = ("src/", "stages/")
# Interpolated from params (the corpus root is a param, not a fixed path).
PARAM_PATHS = {"${data.root}"}
# Modules every driver imports that compute no output: params, errors, atomic writes, the paths,
# and the shared entry (GPU stages reach the executor through it).
INFRASTRUCTURE = {"szflow", "szflow.config", "szflow.errors", "szflow.io_utils", "szflow.layout",
                  "szflow.stages.runner"}


def _names(entries) -> set[str]:
    return {next(iter(e)) if isinstance(e, dict) else e for e in entries or []}


def _outs(stage: dict) -> set[str]:
    return _names(stage.get("outs")) | _names(stage.get("metrics")) | _names(stage.get("plots"))


def _data_deps(stage: dict) -> set[str]:
    """Data deps, without the stage's params file (written from params.yaml, never shipped remotely)."""
    snapshots = {layout.stage_params(name).as_posix() for name in STAGE_PARAMS}
    return {d for d in _names(stage.get("deps")) if not d.startswith(CODE_PREFIXES)} - PARAM_PATHS - snapshots


def _code_deps(stage: dict) -> set[str]:
    return {d for d in _names(stage.get("deps")) if d.startswith(CODE_PREFIXES)}


def _layout_paths() -> set[str]:
    paths = {value.as_posix() for value in vars(layout).values() if isinstance(value, Path)}
    for split in SPLITS:
        paths |= {layout.cache_split_dir(split).as_posix(), layout.predictions_dir(split).as_posix(),
                  layout.split_metrics(split).as_posix(), layout.split_detail(split).as_posix()}
    return paths | {layout.stage_params(name).as_posix() for name in STAGE_PARAMS}


def _driver_imports(name: str) -> set[str]:
    """szflow modules the driver src/szflow/stages/<name>.py imports directly."""
    tree = ast.parse((REPO / "src/szflow/stages" / f"{name}.py").read_text())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("szflow"):
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names if alias.name.startswith("szflow")}
    return modules - INFRASTRUCTURE


def _module_file(module: str) -> str:
    relative = Path("src", *module.split("."))
    return (relative.as_posix() if (REPO / relative).is_dir() else relative.with_suffix(".py").as_posix())


def _covered(path: str, deps: set[str]) -> bool:
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_data_path_of_a_stage_is_a_layout_path(name):
    stage = STAGES[name]
    unknown = (_outs(stage) | _data_deps(stage)) - _layout_paths()
    assert not unknown, f"{name}: paths in dvc.yaml but not in szflow.layout: {sorted(unknown)}"


@pytest.mark.parametrize("name", sorted(GPU_STAGES))
def test_gpu_stage_specs_agree_with_dvc_yaml(name):
    spec, stage = GPU_STAGES[name], STAGES[name]
    assert _outs(stage) == set(spec.outputs)
    assert _data_deps(stage) == set(spec.inputs)
    assert set(spec.resume_files) <= set(spec.outputs)
    assert spec.function == f"szflow.stages.{name}:run"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_runs_its_entry_point_and_depends_on_its_driver(name):
    stage = STAGES[name]
    assert stage["cmd"] == f"python stages/{name}.py"
    code = _code_deps(stage)
    assert {f"stages/{name}.py", f"src/szflow/stages/{name}.py"} <= code
    missing = [dep for dep in sorted(code) if not (REPO / dep).exists()]
    assert not missing, f"{name}: code deps that do not exist: {missing}"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_depends_on_the_libraries_its_driver_calls(name):
    code = _code_deps(STAGES[name])
    uncovered = sorted(m for m in _driver_imports(name) if not _covered(_module_file(m), code))
    assert not uncovered, f"{name}: the driver imports {uncovered}, which dvc.yaml does not list as deps"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_entry_point_is_thin(name):
    text = (REPO / "stages" / f"{name}.py").read_text()
    tree = ast.parse(text)
    imports = [node for node in tree.body if isinstance(node, ast.ImportFrom)]
    assert [(node.module, [a.name for a in node.names]) for node in imports] == [(f"szflow.stages.{name}", ["main"])]
    assert not [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Assign))]


# What each stage declared as params before data/params/<stage>.json replaced the sections (whole
# sections; `hardware`: every key of params/${hw}.yaml), less the `eval` keys it never read (train:
# only the search; dev, eval: not the plots' timeline count): the files must keep covering them.
DECLARED_BEFORE = {
    "synth": {"data", "synth"}, "preprocess": {"data", "preprocess"}, "cache": {"preprocess"},
    "train": {"model", "train", "sampler", "eval.search", "hardware"},
    "dev": {"model", "sampler", "eval.search", "eval.operating_points_fa_per_24h", "hardware"},
    "eval": {"model", "sampler", "eval.search", "eval.operating_points_fa_per_24h", "hardware"},
    "plots": {"eval.timeline_recordings", "data", "preprocess", "sampler.window_s"},
}
# Params a stage declares for `dvc exp show --param-deps`: single keys people compare runs by.
HEADLINE_PARAMS = {"hw", "synth.seed", "model.d_model", "model.n_layers", "train.lr", "train.max_steps"}
SECTIONS = set(SharedParams.model_fields) | {"hardware"}


def test_every_stage_but_params_has_a_params_file():
    assert set(STAGE_PARAMS) == set(STAGES) - {"params"}


def test_params_stage_writes_the_files_from_the_params_and_the_schema():
    stage = STAGES["params"]
    assert {"params.yaml", "params", "src/szflow/config.py"} <= _names(stage["deps"])
    assert _outs(stage) == {layout.STAGE_PARAMS_DIR.as_posix()}


@pytest.mark.parametrize("name", sorted(STAGE_PARAMS))
def test_stage_depends_on_its_params_file_and_declares_only_headline_params(name):
    stage = STAGES[name]
    assert layout.stage_params(name).as_posix() in _names(stage["deps"])
    declared = {p if isinstance(p, str) else next(iter(p)) for p in stage.get("params") or []}
    assert declared <= HEADLINE_PARAMS, f"{name}: declares {sorted(declared - HEADLINE_PARAMS)}"


@pytest.mark.parametrize("name", sorted(STAGE_PARAMS))
def test_params_file_covers_what_the_stage_declared_before(name):
    snapshot = stage_snapshot(load_params(REPO), name)
    for entry in DECLARED_BEFORE[name]:
        section, _, key = entry.partition(".")
        if key == "search":  # train: the post-processing search of `eval` (model selection)
            assert set(load_params(REPO).eval.tuning_grid()) <= set(snapshot[section])
        elif key:
            assert key in snapshot[section], f"{name}: {entry} missing"
        else:
            reference = load_params(REPO)
            full = (reference.hardware if section == "hardware" else getattr(reference.shared, section))
            assert snapshot[section] == full.model_dump(mode="json"), f"{name}: {section} incomplete"


def _sections_read(path: Path) -> set[str]:
    """The params sections a module reads: `params.<section>` and `params.section_hash("<section>", ...)`."""
    read = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id == "params" and node.attr in SECTIONS):
            read.add(node.attr)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "section_hash"):
            read |= {arg.value for arg in node.args if isinstance(arg, ast.Constant)}
    return read


@pytest.mark.parametrize("name", sorted(STAGE_PARAMS))
def test_driver_reads_only_sections_in_its_params_file(name):
    allowed = {entry.partition(".")[0] for entry in STAGE_PARAMS[name]}
    read = _sections_read(REPO / "src/szflow/stages" / f"{name}.py")
    assert read <= allowed, f"{name}: the driver reads {sorted(read - allowed)}, not in STAGE_PARAMS[{name!r}]"

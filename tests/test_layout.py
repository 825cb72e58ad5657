"""dvc.yaml and the code name the same paths: every data dep and out of a stage is a path of
szflow.layout, the GPU stage specs agree with their dvc.yaml stages, and each stage depends on its
entry point, its driver and the libraries the driver calls."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from szflow import layout
from szflow.config import EVAL_SEARCH_KEYS, SPLITS, SharedParams
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
    return {d for d in _names(stage.get("deps")) if not d.startswith(CODE_PREFIXES)} - PARAM_PATHS


def _code_deps(stage: dict) -> set[str]:
    return {d for d in _names(stage.get("deps")) if d.startswith(CODE_PREFIXES)}


def _layout_paths() -> set[str]:
    paths = {value.as_posix() for value in vars(layout).values() if isinstance(value, Path)}
    for split in SPLITS:
        paths |= {layout.cache_split_dir(split).as_posix(), layout.predictions_dir(split).as_posix(),
                  layout.split_metrics(split).as_posix(), layout.split_detail(split).as_posix()}
    return paths


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


SECTIONS = set(SharedParams.model_fields) | {"hardware"}


def _declared_params(stage: dict) -> set[str]:
    """Declared params as `section` or `section.key`; the profile file `params/${hw}.yaml` as `hardware`."""
    names = _names(stage.get("params"))
    return {"hardware" if name.startswith("params/") else name for name in names}


def _sections_read(path: Path) -> set[str]:
    """The params sections a module reads: `params.<section>` and `params.section_hash("<section>", ...)`."""
    read = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id == "params" and node.attr in SECTIONS):
            read.add(node.attr)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "section_hash":
            read |= {arg.value for arg in node.args if isinstance(arg, ast.Constant)}
    return read


@pytest.mark.parametrize("name", sorted(STAGES))
def test_driver_reads_only_params_its_stage_declares(name):
    declared = {entry.partition(".")[0] for entry in _declared_params(STAGES[name])}
    read = _sections_read(REPO / "src/szflow/stages" / f"{name}.py")
    assert read <= declared, f"{name}: the driver reads {sorted(read - declared)}, which dvc.yaml does not declare"


@pytest.mark.parametrize("name", ["train", "dev", "eval"])
def test_stages_that_tune_post_processing_declare_the_whole_search(name):
    # Training selects its checkpoint by tuning the post-processing (szflow.train.selection); dev tunes
    # it; eval applies it. Each declares every key of `EvalConfig.tuning_grid` and the hardware profile.
    declared = _declared_params(STAGES[name])
    assert {f"eval.{key}" for key in EVAL_SEARCH_KEYS} | {"model", "sampler", "hardware"} <= declared

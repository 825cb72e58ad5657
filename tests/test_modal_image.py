"""The Modal image: one lock file pins every package; it resolves for the image's platform, is
complete and consistent, and the mamba_ssm modules that import transformers import against the
locked transformers.

The resolving tests use the package registry (pip with this machine's pip configuration): they
never skip. They download package metadata, the mamba-ssm sdist (~100 KB) and the locked
transformers with its dependencies (~40 MB), and take well under a minute each.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import modal
import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from szflow.remote import modal_app
from szflow.remote.modal_app import IMAGE_LOCK, IMAGE_PYTHON, KERNEL_PACKAGES, build_image, read_image_lock
from szflow.remote.plan import check_image_lock, check_python

REPO = Path(__file__).resolve().parents[1]
# Modal's debian_slim is Debian 12 (glibc 2.36): every manylinux tag up to 2.36 installs there.
# pip 23 wants each tag spelled out.
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in (36, 35, 34, 31, 28, 27, 26, 24, 17, 12, 5)] + [
    "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64"]
CP = "cp" + IMAGE_PYTHON.replace(".", "")
IMAGE_MARKERS = {
    "python_version": IMAGE_PYTHON, "python_full_version": f"{IMAGE_PYTHON}.11", "sys_platform": "linux",
    "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
    "implementation_name": "cpython", "platform_python_implementation": "CPython",
    "platform_release": "", "platform_version": "", "implementation_version": f"{IMAGE_PYTHON}.11",
}


def _pip(*args: str, cwd: Path, env: dict | None = None, timeout: int = 240) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "pip", *args], cwd=cwd, check=False, capture_output=True, text=True,
                            timeout=timeout, env={**os.environ, **(env or {})})
    assert result.returncode == 0, f"pip {' '.join(args[:3])} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _exact_pins() -> dict[str, str]:
    return {name: pin[2:] for name, pin in read_image_lock().items() if pin.startswith("==")}


@pytest.fixture(scope="module")
def lock_report(tmp_path_factory) -> dict[str, dict]:
    """pip's report for every `name==version` line of the lock, resolved for the image's Python
    and platform: {canonical name: metadata}. Fails when any pin has no distribution there."""
    work = tmp_path_factory.mktemp("lock")
    pins = work / "pins.txt"
    pins.write_text("".join(f"{name}=={version}\n" for name, version in _exact_pins().items()))
    platforms = [arg for tag in PLATFORMS for arg in ("--platform", tag)]
    _pip("install", "--dry-run", "--ignore-installed", "--no-deps", "--quiet", "--report", "report.json",
         "--python-version", IMAGE_PYTHON, "--implementation", "cp", "--abi", CP, *platforms,
         "--target", str(work / "target"), "-r", str(pins), cwd=work)
    report = json.loads((work / "report.json").read_text())
    return {canonicalize_name(item["metadata"]["name"]): item["metadata"] for item in report["install"]}


@pytest.fixture(scope="module")
def mamba_sdist(tmp_path_factory) -> Path:
    """The mamba-ssm source release of the locked kernel wheel (its Python files are the wheel's)."""
    work = tmp_path_factory.mktemp("mamba")
    version = _kernel_version("mamba-ssm")
    # MAMBA_SKIP_CUDA_BUILD: pip prepares the sdist's metadata, which otherwise wants nvcc.
    _pip("download", "--no-deps", "--no-binary", ":all:", "--no-build-isolation", "--quiet",
         f"mamba-ssm=={version}", "-d", str(work), cwd=work, env={"MAMBA_SKIP_CUDA_BUILD": "TRUE"})
    with tarfile.open(next(work.glob("mamba_ssm-*.tar.gz"))) as archive:
        archive.extractall(work, filter="data")
    return next(work.glob("mamba_ssm-*/"))


def _kernel_version(name: str) -> str:
    wheel = read_image_lock()[name].rsplit("/", 1)[-1]
    return wheel.split("-")[1].split("+")[0]


# ----------------------------------------------------------------------------- offline
def test_lock_pins_every_package_exactly():
    pins = read_image_lock()
    assert len(pins) > 100 and all(p.startswith(("==", "@ ")) for p in pins.values())
    assert pins["torch"] == "==2.6.0"
    assert Version(pins["transformers"][2:]).major < 5  # mamba-ssm 2.2 imports what 5.x removed
    for name in KERNEL_PACKAGES:
        url = pins[name][2:]
        assert url.startswith("https://github.com/") and url.endswith(f"-{CP}-{CP}-linux_x86_64.whl")
        # Prebuilt for torch 2.6, CUDA 12 and torch 2.6's PyPI ABI (pre-C++11): nothing compiles.
        assert "+cu12torch2.6cxx11abiFALSE-" in url
    assert check_image_lock().ok


def test_lock_errors_are_clear(tmp_path):
    bad = tmp_path / "lock.txt"
    bad.write_text("torch==2.6.0\nnumpy>=1.26\n")
    with pytest.raises(Exception, match="not pinned exactly"):
        read_image_lock(bad)
    check = check_image_lock(tmp_path / "missing.lock")
    assert not check.ok and "missing" in check.message and check.fix
    other_torch = tmp_path / "torch27.lock"
    other_torch.write_text(IMAGE_LOCK.read_text().replace("torch==2.6.0", "torch==2.7.0"))
    check = check_image_lock(other_torch)
    assert not check.ok and "torch 2.7" in check.message


def test_image_recipe_fixed_python_lock_and_local_source(monkeypatch):
    """The image is debian_slim with the fixed Python (never the client's), gcc for Triton, the lock
    installed with --no-deps, and szflow as local source."""
    calls: list[tuple] = []

    class Recorder:
        def __getattr__(self, name):
            def step(*args, **kwargs):
                calls.append((name, args, kwargs))
                return self
            return step

    def debian_slim(**kwargs):
        calls.append(("debian_slim", (), kwargs))
        return Recorder()

    monkeypatch.setattr(modal.Image, "debian_slim", staticmethod(debian_slim))
    build_image()
    assert calls[0] == ("debian_slim", (), {"python_version": "3.11"})
    assert ("apt_install", ("gcc",), {}) in calls
    assert ("pip_install_from_requirements", (str(IMAGE_LOCK),), {"extra_options": "--no-deps"}) in calls
    assert ("add_local_python_source", ("szflow",), {}) in calls
    assert IMAGE_LOCK.is_file() and IMAGE_LOCK.parent == Path(modal_app.__file__).parent


def test_lock_ships_with_the_package():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    package_data = pyproject["tool"]["setuptools"]["package-data"]["szflow"]
    assert IMAGE_LOCK.relative_to(REPO / "src/szflow").as_posix() in package_data
    requires = pyproject["project"]["requires-python"]
    assert Version(IMAGE_PYTHON) in SpecifierSet(requires) and Version("3.12") not in SpecifierSet(requires)


# ----------------------------------------------------------------------------- registry
def test_lock_resolves_for_the_image_and_is_complete(lock_report):
    """Every pin exists for Python 3.11 / manylinux x86_64, and every requirement of every pinned
    package (markers evaluated for the image, extras followed) is met by another pin: installing
    the lock with --no-deps gives a consistent environment."""
    pins = {name: Version(v) for name, v in _exact_pins().items()}
    assert {name: Version(m["version"]) for name, m in lock_report.items()} == pins
    extras: dict[str, set[str]] = {name: {""} for name in pins}
    todo = list(pins)
    unmet = []
    while todo:
        name = todo.pop()
        for line in lock_report[name].get("requires_dist") or []:
            req = Requirement(line)
            if req.marker is not None and not any(
                    req.marker.evaluate({**IMAGE_MARKERS, "extra": extra}) for extra in extras[name]):
                continue
            dep = canonicalize_name(req.name)
            if dep not in pins or not req.specifier.contains(pins[dep], prereleases=True):
                unmet.append(f"{name} needs {line} (lock: {pins.get(dep)})")
                continue
            new = set(req.extras) - extras[dep]
            if new:
                extras[dep] |= new
                todo.append(dep)
    assert unmet == []


def test_lock_meets_szflow_and_kernel_requirements(lock_report, mamba_sdist):
    pins = {name: Version(v) for name, v in _exact_pins().items()}
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    client_only = {"modal"}  # provided by Modal in every container
    for line in pyproject["project"]["dependencies"]:
        req = Requirement(line)
        if canonicalize_name(req.name) in client_only:
            continue
        assert req.specifier.contains(pins[canonicalize_name(req.name)], prereleases=True), line
    # The kernel wheel's own requirements (setup.py install_requires of the same release).
    setup = ast.parse((mamba_sdist / "setup.py").read_text())
    install_requires = next(
        kw.value for node in ast.walk(setup) if isinstance(node, ast.Call)
        for kw in node.keywords if kw.arg == "install_requires")
    for req in ast.literal_eval(install_requires):
        assert canonicalize_name(Requirement(req).name) in pins, req


def test_mamba_ssm_modules_import_against_the_locked_transformers(lock_report, mamba_sdist, tmp_path):
    """mamba_ssm 2.2.4 imports transformers on every `import mamba_ssm` (utils/generation.py) and
    huggingface_hub (modules/mamba2.py). Its compiled kernels need a GPU; these modules do not:
    import them, from the release's source, against the locked transformers and its locked
    dependencies (torch is this machine's)."""
    pins = _exact_pins()
    wanted, todo = set(), ["transformers", "huggingface-hub", "einops"]
    while todo:  # the locked closure of transformers' requirements, as the image evaluates them
        name = todo.pop()
        if name in wanted or name in ("torch",):
            continue
        wanted.add(name)
        for line in lock_report[name].get("requires_dist") or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({**IMAGE_MARKERS, "extra": ""}):
                todo.append(canonicalize_name(req.name))
    target = tmp_path / "site"
    _pip("install", "--no-deps", "--quiet", "--only-binary", ":all:", "--target", str(target),
         *[f"{name}=={pins[name]}" for name in sorted(wanted)], cwd=tmp_path)
    generation = mamba_sdist / "mamba_ssm/utils/generation.py"
    imported = sorted(
        alias.name for node in ast.walk(ast.parse(generation.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("transformers")
        for alias in node.names)
    assert "GreedySearchDecoderOnlyOutput" in imported  # the import transformers 5 breaks
    script = f"""
import importlib.util, sys
sys.path.insert(0, {str(target)!r})
import transformers, huggingface_hub
assert transformers.__file__.startswith({str(target)!r}), transformers.__file__
for rel in ("utils/generation.py", "utils/hf.py"):
    spec = importlib.util.spec_from_file_location("mamba_ssm_" + rel.replace("/", "_")[:-3],
                                                  {str(mamba_sdist / "mamba_ssm")!r} + "/" + rel)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
from huggingface_hub import PyTorchModelHubMixin  # modules/mamba2.py
print(transformers.__version__)
"""
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120,
                            cwd=tmp_path, env={**os.environ, "TRANSFORMERS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == pins["transformers"]


def test_client_python_check_names_the_fix():
    assert check_python((3, 11)).ok
    check = check_python((3, 14))
    assert not check.ok and "3.14" in check.message and "3.11" in check.message and "3.11" in check.fix
    assert Marker("python_version == '3.11'").evaluate(IMAGE_MARKERS)

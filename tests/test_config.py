from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from szflow.config import HardwareConfig, SharedParams, load_params
from szflow.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _project(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(ROOT / "params", tmp_path / "params")
    return tmp_path


def _edit(path: Path, edit) -> None:
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data))


def test_repository_params_load_for_every_profile():
    for profile in sorted((ROOT / "params").glob("*.yaml")):
        params = load_params(ROOT, hw=profile.stem)
        assert params.hw == profile.stem
        assert isinstance(params.hardware, HardwareConfig)


def test_profiles_hold_only_hardware_keys():
    # A profile file must not be able to change the model, preprocessing or post-processing.
    for profile in sorted((ROOT / "params").glob("*.yaml")):
        data = yaml.safe_load(profile.read_text())
        assert set(data) == {"hardware"}, f"{profile} has non-hardware top-level keys"
        assert set(data["hardware"]) <= set(HardwareConfig.model_fields)


def test_profiles_share_model_preprocessing_and_postprocessing():
    local = load_params(ROOT, hw="local")
    a100 = load_params(ROOT, hw="a100")
    assert local.shared.model_copy(update={"hw": "x"}) == a100.shared.model_copy(update={"hw": "x"})
    for section in ("preprocess", "model", "postprocess", "sampler", "eval", "train", "data", "synth"):
        assert local.section_hash(section) == a100.section_hash(section)
    assert local.section_hash("hardware") != a100.section_hash("hardware")


def test_a100_profile_has_the_seed_settings():
    hardware = load_params(ROOT, hw="a100").hardware
    assert (hardware.train_batch_size, hardware.inference_batch_size) == (64, 128)
    assert (hardware.num_workers, hardware.pin_memory, hardware.persistent_workers) == (8, True, True)
    assert (hardware.prefetch_factor, hardware.precision, hardware.grad_accumulation) == (4, "bf16", 1)
    assert (hardware.device, hardware.executor, hardware.gpu) == ("cuda", "modal", "A100-80GB")


def test_unknown_shared_key_names_file_and_key(tmp_path):
    root = _project(tmp_path)
    _edit(root / "params.yaml", lambda d: d["model"].update(n_layerz=3))
    with pytest.raises(ConfigError, match=r"params\.yaml: unknown key 'model\.n_layerz'"):
        load_params(root)


def test_wrong_type_names_file_and_key(tmp_path):
    root = _project(tmp_path)
    _edit(root / "params.yaml", lambda d: d["model"].update(d_model="big"))
    with pytest.raises(ConfigError, match=r"params\.yaml: key 'model\.d_model'"):
        load_params(root)


def test_unknown_profile_key_names_profile_file(tmp_path):
    root = _project(tmp_path)
    _edit(root / "params" / "a100.yaml", lambda d: d["hardware"].update(batch=3))
    with pytest.raises(ConfigError, match=r"a100\.yaml: unknown key 'hardware\.batch'"):
        load_params(root, hw="a100")


def test_profile_with_shared_section_is_rejected(tmp_path):
    root = _project(tmp_path)
    _edit(root / "params" / "local.yaml", lambda d: d.update(model={"d_model": 8}))
    with pytest.raises(ConfigError, match=r"local\.yaml: unknown key 'model'"):
        load_params(root)


def test_missing_profile_lists_available(tmp_path):
    root = _project(tmp_path)
    _edit(root / "params.yaml", lambda d: d.update(hw="tpu"))
    with pytest.raises(ConfigError, match=r"available: \['a100', 'local'\]"):
        load_params(root)


def test_invalid_yaml_is_a_config_error(tmp_path):
    root = _project(tmp_path)
    (root / "params.yaml").write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(root)


def test_inconsistent_values_are_rejected():
    with pytest.raises(Exception, match="inference_overlap_s"):
        SharedParams.model_validate({"sampler": {"window_s": 10, "inference_overlap_s": 20}})
    with pytest.raises(Exception, match="num_workers"):
        HardwareConfig.model_validate({"num_workers": 0, "persistent_workers": True})

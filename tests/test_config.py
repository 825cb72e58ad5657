from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from szflow.config import ELECTRODES, HardwareConfig, ProfileFile, SharedParams, load_params
from szflow.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
# Still defaulted in the schema because the training refactor deletes them with their options.
def _project(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(ROOT / "params", tmp_path / "params")
    return tmp_path


def _edit(path: Path, edit) -> None:
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data))


def _leaf_keys(data: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        # `synth.patients` is one value (a mapping of split to count), not a section.
        if isinstance(value, dict) and dotted != "synth.patients":
            keys += _leaf_keys(value, dotted + ".")
        else:
            keys.append(dotted)
    return keys


def _delete(data: dict, dotted: str) -> None:
    *sections, last = dotted.split(".")
    for section in sections:
        data = data[section]
    del data[last]


def _defaulted_fields(model: type, prefix: str = "") -> list[str]:
    found = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += _defaulted_fields(annotation, f"{prefix}{name}.")
        elif not field.is_required():
            found.append(f"{prefix}{name}")
    return found


def test_repository_params_load_for_every_profile():
    for profile in sorted((ROOT / "params").glob("*.yaml")):
        params = load_params(ROOT, hw=profile.stem)
        assert params.hw == profile.stem
        assert isinstance(params.hardware, HardwareConfig)


def test_schema_has_no_second_set_of_defaults():
    # Every value comes from params.yaml or the profile: a default would be a second source of truth.
    defaulted = _defaulted_fields(SharedParams) + _defaulted_fields(ProfileFile)
    assert defaulted == [], defaulted


def test_every_missing_key_names_file_and_key(tmp_path):
    root = _project(tmp_path)
    shared_text = (root / "params.yaml").read_text()
    for dotted in _leaf_keys(yaml.safe_load(shared_text)):
        _edit(root / "params.yaml", lambda d, key=dotted: _delete(d, key))
        with pytest.raises(ConfigError, match=rf"params\.yaml: missing key '{dotted}'"):
            load_params(root)
        (root / "params.yaml").write_text(shared_text)

    profile = root / "params" / "local.yaml"
    profile_text = profile.read_text()
    for dotted in _leaf_keys(yaml.safe_load(profile_text)):
        _edit(profile, lambda d, key=dotted: _delete(d, key))
        with pytest.raises(ConfigError, match=rf"local\.yaml: missing key '{dotted}'"):
            load_params(root)
        profile.write_text(profile_text)


def test_missing_section_names_the_section(tmp_path):
    root = _project(tmp_path)
    _edit(root / "params.yaml", lambda d: d.pop("sampler"))
    with pytest.raises(ConfigError, match=r"params\.yaml: missing key 'sampler'$"):
        load_params(root)


def test_profiles_hold_only_hardware_keys():
    # A profile file must not be able to change the model, preprocessing or post-processing.
    for profile in sorted((ROOT / "params").glob("*.yaml")):
        data = yaml.safe_load(profile.read_text())
        assert set(data) == {"hardware"}, f"{profile} has non-hardware top-level keys"
        assert set(data["hardware"]) == set(HardwareConfig.model_fields)


def test_profiles_differ_only_in_hardware():
    local = load_params(ROOT, hw="local")
    a100 = load_params(ROOT, hw="a100")
    assert local.shared.model_copy(update={"hw": "x"}) == a100.shared.model_copy(update={"hw": "x"})
    for section in ("data", "synth", "preprocess", "sampler", "model", "train", "eval"):
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


def test_electrode_dropout_settings_are_checked():
    params = load_params(ROOT)
    assert params.train.electrode_dropout_probability == 0.5 and params.train.electrode_dropout_max == 4
    with pytest.raises(ConfigError, match=r"key 'train'.*electrode_dropout_max must be >= 1"):
        load_params(ROOT, overrides={"train.electrode_dropout_max": 0})
    with pytest.raises(ConfigError, match=r"electrode_dropout_max must be below 19"):
        load_params(ROOT, overrides={"train.electrode_dropout_max": 19})
    with pytest.raises(ConfigError, match=r"train\.electrode_dropout_probability"):
        load_params(ROOT, overrides={"train.electrode_dropout_probability": 1.5})
    off = load_params(ROOT, overrides={"train.electrode_dropout_probability": 0.0, "train.electrode_dropout_max": 0})
    assert off.train.electrode_dropout_max == 0


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


# ----------------------------------------------------------------------------- overrides
def test_overrides_change_only_the_named_keys():
    base = load_params(ROOT)
    params = load_params(ROOT, overrides={"model.n_layers": 2, "synth.patients.train": 3,
                                          "hardware.precision": "fp32"})
    assert params.model.n_layers == 2 and params.hardware.precision == "fp32"
    assert params.synth.patients == {**base.synth.patients, "train": 3}
    assert params.model.model_copy(update={"n_layers": base.model.n_layers}) == base.model
    assert params.hardware.model_copy(update={"precision": base.hardware.precision}) == base.hardware
    for section in ("data", "preprocess", "sampler", "train", "eval"):
        assert params.section_hash(section) == base.section_hash(section)


def test_overrides_are_validated_like_the_file():
    with pytest.raises(ConfigError, match=r"unknown key 'model\.n_layerz'"):
        load_params(ROOT, overrides={"model.n_layerz": 2})
    with pytest.raises(ConfigError, match=r"unknown key 'hardware\.batch'"):
        load_params(ROOT, overrides={"hardware.batch": 2})
    with pytest.raises(ConfigError, match=r"key 'model\.n_layers'"):
        load_params(ROOT, overrides={"model.n_layers": 0})
    with pytest.raises(ConfigError, match=r"key 'hardware\.precision'"):
        load_params(ROOT, overrides={"hardware.precision": "fp64"})
    with pytest.raises(ConfigError, match="dotted key"):
        load_params(ROOT, overrides={"model.": 2})
    with pytest.raises(ConfigError, match="not a section"):
        load_params(ROOT, overrides={"model.n_layers.deep": 2})


def test_overrides_leave_the_files_alone(tmp_path):
    root = _project(tmp_path)
    before = {p: p.read_bytes() for p in sorted(root.rglob("*.yaml"))}
    load_params(root, overrides={"model.n_layers": 2, "hardware.retries": 5})
    assert {p: p.read_bytes() for p in sorted(root.rglob("*.yaml"))} == before


# ----------------------------------------------------------------------------- cross-checks
def test_in_channels_must_be_one_per_electrode():
    expected = rf"params\.yaml: model\.in_channels \(21\) must be {len(ELECTRODES)}, "
    with pytest.raises(ConfigError, match=expected):
        load_params(ROOT, overrides={"model.in_channels": 21})


def test_electrodes_are_defined_once():
    from szflow.cache.layout import N_CHANNELS
    from szflow.data.edf import ELECTRODES as EDF_ELECTRODES

    assert EDF_ELECTRODES == ELECTRODES and len(ELECTRODES) == len(set(ELECTRODES)) == 19
    assert N_CHANNELS == len(ELECTRODES) == load_params(ROOT).model.in_channels


def test_between_split_dispersion_below_one_is_rejected():
    assert load_params(ROOT).eval.between_split_dispersion >= 1.0
    with pytest.raises(ConfigError, match=r"eval\.between_split_dispersion"):
        load_params(ROOT, overrides={"eval.between_split_dispersion": 0.5})


def test_frame_rate_must_divide_the_sample_rate():
    expected = r"params\.yaml: model\.frame_rate_hz \(3\) must divide preprocess\.sample_rate_hz"
    with pytest.raises(ConfigError, match=expected):
        load_params(ROOT, overrides={"model.frame_rate_hz": 3.0})
    assert load_params(ROOT, overrides={"model.frame_rate_hz": 8.0}).model.frame_rate_hz == 8.0


def test_inconsistent_values_are_rejected():
    with pytest.raises(ConfigError, match=r"params\.yaml: key 'sampler': .*inference_overlap_s"):
        load_params(ROOT, overrides={"sampler.window_s": 10.0, "sampler.inference_overlap_s": 20.0})
    with pytest.raises(ConfigError, match=r"local\.yaml: key 'hardware': .*num_workers"):
        load_params(ROOT, hw="local",
                    overrides={"hardware.num_workers": 0, "hardware.persistent_workers": True})
    with pytest.raises(ConfigError, match="modal needs a gpu"):
        load_params(ROOT, hw="a100", overrides={"hardware.gpu": None})

"""One typed schema for `params.yaml` (shared settings) merged with `params/<hw>.yaml` (hardware).

Unknown keys and wrong types fail with a message naming the file and the dotted key.
Profiles hold hardware only, under one top key `hardware:` so that `dvc.api.params_show` (which
merges files flat) never mixes a profile key into the shared sections.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from szflow.errors import ConfigError

SPLITS = ("train", "dev", "eval")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ----------------------------------------------------------------------------- shared sections
class DataConfig(_Strict):
    source: Literal["synthetic", "tusz", "bids"] = "synthetic"
    # Corpus root: for `synthetic` the folder the synth stage writes; for tusz/bids the dataset root.
    root: str = "data/synth"


class SynthConfig(_Strict):
    seed: int = 0
    patients: dict[str, int] = Field(default_factory=lambda: {"train": 10, "dev": 4, "eval": 4})
    recordings_per_patient: int = Field(2, ge=1)
    min_duration_s: float = Field(240.0, gt=10)
    max_duration_s: float = Field(600.0, gt=10)
    seizure_recording_fraction: float = Field(0.5, ge=0, le=1)
    broken_files: int = Field(3, ge=0)

    @model_validator(mode="after")
    def _check(self) -> SynthConfig:
        unknown = set(self.patients) - set(SPLITS)
        if unknown:
            raise ValueError(f"patients: unknown split(s) {sorted(unknown)}; use {list(SPLITS)}")
        if self.max_duration_s < self.min_duration_s:
            raise ValueError("max_duration_s must be >= min_duration_s")
        return self


class PreprocessConfig(_Strict):
    sample_rate_hz: int = 256
    bandpass_hz: tuple[float, float] = (0.5, 120.0)
    bandpass_order: int = Field(4, ge=1, le=10)
    notch_hz: float | None = 60.0
    notch_quality: float = Field(30.0, gt=0)
    normalisation: Literal["median_iqr", "mean_std"] = "median_iqr"
    clip: float = Field(10.0, gt=0)
    num_workers: int = Field(2, ge=0)
    max_failed_fraction: float = Field(0.25, ge=0, le=1)

    @field_validator("bandpass_hz")
    @classmethod
    def _band(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 < value[0] < value[1]:
            raise ValueError("bandpass_hz must be [low, high] with 0 < low < high")
        return value


class SamplerConfig(_Strict):
    window_s: float = Field(60.0, gt=0)
    # Relative weights of training windows that hold mostly seizure, part seizure, or none.
    seizure_weight: float = Field(0.4, ge=0)
    partial_weight: float = Field(0.3, ge=0)
    background_weight: float = Field(0.3, ge=0)
    # Seizure-free windows around the training frames the classical baseline scores highest (the
    # top `hard_background_top_fraction` of background frames): seizure-like artifacts
    # (szflow.train.hard_negatives). 0 turns the class off.
    hard_background_weight: float = Field(0.0, ge=0)
    hard_background_top_fraction: float = Field(0.02, gt=0, le=1)
    inference_overlap_s: float = Field(10.0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> SamplerConfig:
        if self.seizure_weight + self.partial_weight + self.background_weight + self.hard_background_weight <= 0:
            raise ValueError("at least one sampler weight must be positive")
        if self.inference_overlap_s >= self.window_s:
            raise ValueError("inference_overlap_s must be smaller than window_s")
        return self


class ModelConfig(_Strict):
    in_channels: int = 19
    frame_rate_hz: float = Field(4.0, gt=0)
    encoder_channels: list[int] = Field(default_factory=lambda: [64, 128, 256])
    # Features per electrode kept in electrode order (where the activity is).
    encoder_spatial_channels: int = Field(8, ge=0)
    n_layers: int = Field(6, ge=1)
    d_model: int = Field(512, ge=8)
    d_state: int = Field(16, ge=1)
    d_conv: int = Field(4, ge=1)
    expand: int = Field(2, ge=1)
    chunk_size: int = Field(64, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)


class TrainConfig(_Strict):
    seed: int = 0
    val_fraction: float = Field(0.2, gt=0, lt=1)
    val_seed: int = 0
    pos_weight: float = Field(2.0, gt=0)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_steps: int = Field(20, ge=0)
    max_steps: int = Field(300, ge=1)
    eval_every_steps: int = Field(50, ge=1)
    checkpoint_every_steps: int = Field(25, ge=1)
    patience_evals: int = Field(4, ge=1)
    grad_clip: float = Field(1.0, gt=0)
    selection_fa_per_24h: int = Field(10, ge=0)


class PostprocessConfig(_Strict):
    smoothing_s: float = Field(2.0, ge=0)
    threshold: float = Field(0.5, gt=0, lt=1)
    hysteresis_low: float | None = None
    min_duration_s: float = Field(5.0, ge=0)
    merge_gap_s: float = Field(5.0, ge=0)


class EvalConfig(_Strict):
    # Integers or strings only as keys downstream: never floats (DESIGN.md §10).
    operating_points_fa_per_24h: list[float] = Field(default_factory=lambda: [10, 5, 2.5, 1])
    threshold_grid: list[float] = Field(
        default_factory=lambda: [round(0.05 * i, 2) for i in range(2, 20)]
    )
    smoothing_grid_s: list[float] = Field(default_factory=lambda: [0.0, 2.0, 5.0])
    min_duration_grid_s: list[float] = Field(default_factory=lambda: [0.0, 5.0, 10.0])
    merge_gap_grid_s: list[float] = Field(default_factory=lambda: [0.0, 10.0])
    # Lower thresholds that extend an event once the threshold is crossed; null: no hysteresis.
    hysteresis_low_grid: list[Annotated[float, Field(gt=0, lt=1)] | None] = Field(default_factory=lambda: [None])
    timeline_recordings: int = Field(4, ge=0)

    def tuning_grid(self) -> dict[str, list]:
        """The post-processing grid as keyword arguments of `tune_operating_points`."""
        return {
            "threshold_grid": self.threshold_grid, "smoothing_grid_s": self.smoothing_grid_s,
            "min_duration_grid_s": self.min_duration_grid_s, "merge_gap_grid_s": self.merge_gap_grid_s,
            "hysteresis_low_grid": self.hysteresis_low_grid,
        }


class SharedParams(_Strict):
    hw: str = "local"
    data: DataConfig = DataConfig()
    synth: SynthConfig = SynthConfig()
    preprocess: PreprocessConfig = PreprocessConfig()
    sampler: SamplerConfig = SamplerConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    postprocess: PostprocessConfig = PostprocessConfig()
    eval: EvalConfig = EvalConfig()


# ----------------------------------------------------------------------------- hardware profile
class HardwareConfig(_Strict):
    executor: Literal["local", "modal"] = "local"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    gpu: str | None = None
    gpus: int = Field(1, ge=1)
    cpus: float = Field(2.0, gt=0)
    memory_mb: int = Field(8192, gt=0)
    timeout_s: int = Field(6 * 3600, gt=0)
    retries: int = Field(2, ge=0)
    train_batch_size: int = Field(8, ge=1)
    inference_batch_size: int = Field(32, ge=1)
    num_workers: int = Field(0, ge=0)
    pin_memory: bool = False
    persistent_workers: bool = False
    prefetch_factor: int | None = None
    # auto: bf16 where the device has native bf16 (CUDA, a CPU with AVX512-BF16/AMX), else fp32.
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "fp32"
    grad_accumulation: int = Field(1, ge=1)
    mamba_impl: Literal["auto", "torch", "cuda"] = "auto"
    wandb_mode: Literal["online", "offline", "disabled"] = "disabled"

    @model_validator(mode="after")
    def _check(self) -> HardwareConfig:
        if self.num_workers == 0 and (self.persistent_workers or self.prefetch_factor is not None):
            raise ValueError("persistent_workers/prefetch_factor need num_workers > 0")
        if self.executor == "modal" and not self.gpu:
            raise ValueError("executor: modal needs a gpu string, e.g. A100-80GB")
        return self


class ProfileFile(_Strict):
    hardware: HardwareConfig


class Params(BaseModel):
    """The merged view a stage works with: shared sections plus the active hardware profile."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shared: SharedParams
    hardware: HardwareConfig
    root: str = "."

    # Convenience accessors so stage code reads `params.model`, `params.hardware`, ...
    @property
    def hw(self) -> str:
        return self.shared.hw

    @property
    def data(self) -> DataConfig:
        return self.shared.data

    @property
    def synth(self) -> SynthConfig:
        return self.shared.synth

    @property
    def preprocess(self) -> PreprocessConfig:
        return self.shared.preprocess

    @property
    def sampler(self) -> SamplerConfig:
        return self.shared.sampler

    @property
    def model(self) -> ModelConfig:  # type: ignore[override]
        return self.shared.model

    @property
    def train(self) -> TrainConfig:
        return self.shared.train

    @property
    def postprocess(self) -> PostprocessConfig:
        return self.shared.postprocess

    @property
    def eval(self) -> EvalConfig:
        return self.shared.eval

    def section_hash(self, *sections: str) -> str:
        """Stable hash of the named shared sections (and `hardware` if named), for checkpoints/caches."""
        payload = {}
        for name in sections:
            obj = self.hardware if name == "hardware" else getattr(self.shared, name)
            payload[name] = obj.model_dump(mode="json")
        blob = json.dumps(payload, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _format_validation_error(path: Path, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"{path}: unknown key '{key}'")
        else:
            lines.append(f"{path}: key '{key}': {item['msg']} (got {item.get('input')!r})")
    return "\n".join(lines)


def _read_yaml(path: Path) -> dict:
    if not path.exists():
        raise ConfigError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def parse_shared(data: dict, path: Path | str = "params.yaml") -> SharedParams:
    try:
        return SharedParams.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(Path(path), exc)) from None


def parse_profile(data: dict, path: Path | str) -> HardwareConfig:
    try:
        return ProfileFile.model_validate(data).hardware
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(Path(path), exc)) from None


def profile_path(root: str | Path, hw: str) -> Path:
    return Path(root) / "params" / f"{hw}.yaml"


def apply_overrides(shared: dict, profile: dict, overrides: Mapping[str, Any]) -> None:
    """Set dotted keys (`model.n_layers`, `hardware.precision`) in the raw params dicts, in place,
    before validation, so an override is checked like a value in the file (as `dvc exp run -S`)."""
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        if not all(parts):
            raise ConfigError(f"override {dotted!r}: expected a dotted key such as 'model.n_layers'")
        target = profile if parts[0] == "hardware" else shared
        for part in parts[:-1]:
            child = target.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {dotted!r}: {part!r} is not a section")
            target = child
        target[parts[-1]] = copy.deepcopy(value)


def load_params(root: str | Path = ".", hw: str | None = None,
                overrides: Mapping[str, Any] | None = None) -> Params:
    """Load `params.yaml` and the profile it names (or `hw`, to override) from project `root`.

    `overrides` maps dotted keys to values (`{"model.n_layers": 2, "hardware.precision": "fp32"}`):
    tests and benchmarks start from the project's params and change only what they name."""
    root = Path(root)
    shared_path = root / "params.yaml"
    shared_data = _read_yaml(shared_path)
    if hw is not None:
        shared_data["hw"] = hw
    hw_name = shared_data.get("hw")
    hw_path = profile_path(root, hw_name if isinstance(hw_name, str) else "")
    if not hw_path.exists():
        available = sorted(p.stem for p in (root / "params").glob("*.yaml"))
        raise ConfigError(f"{shared_path}: key 'hw': no profile {hw_path} (available: {available})")
    profile_data = _read_yaml(hw_path)
    if overrides:
        apply_overrides(shared_data, profile_data, overrides)
    shared = parse_shared(shared_data, shared_path)
    hardware = parse_profile(profile_data, hw_path)
    return Params(shared=shared, hardware=hardware, root=str(root))


def corpus_root(params: Params) -> Path:
    root = Path(params.data.root)
    return root if root.is_absolute() else Path(params.root) / root

"""One typed schema for `params.yaml` (shared settings) merged with `params/<hw>.yaml` (hardware).

The files are the only source of the values: the schema has no defaults, and unknown keys,
missing keys and wrong types fail with a message naming the file and the dotted key.
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
# The 19 electrodes of the 10-20 system, in the channel order of every array szflow writes (DESIGN.md §4).
ELECTRODES: tuple[str, ...] = (
    "FP1", "FP2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2",
    "F7", "F8", "T3", "T4", "T5", "T6", "FZ", "CZ", "PZ",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ----------------------------------------------------------------------------- shared sections
# No field has a default: params.yaml and params/<hw>.yaml set every key, so a key missing from a
# file is an error naming the file and key, not a silent second value.
class DataConfig(_Strict):
    source: Literal["synthetic", "tusz", "bids"]
    # Corpus root: for `synthetic` the folder the synth stage writes; for tusz/bids the dataset root.
    root: str


class SplitCounts(_Strict):
    train: int = Field(ge=0)
    dev: int = Field(ge=0)
    eval: int = Field(ge=0)


class SynthVariantFractions(_Strict):
    """Fraction of each split's patient recordings written in each real-world form (szflow.synth.variants)."""

    bipolar_tcp: float = Field(ge=0, le=1)
    bipolar_chbmit: float = Field(ge=0, le=1)
    labels_1010: float = Field(ge=0, le=1)
    labels_padded: float = Field(ge=0, le=1)
    labels_suffix: float = Field(ge=0, le=1)
    missing_electrodes: float = Field(ge=0, le=1)
    discontinuous: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _total(self) -> SynthVariantFractions:
        total = sum(self.model_dump().values())
        if total > 1:
            raise ValueError(f"the variant fractions add up to {total:g}; at most 1 (one variant per recording)")
        return self


class SynthConfig(_Strict):
    seed: int
    eval_seed: int | None  # null: the eval split is drawn from `seed` like the others
    patients: dict[str, Annotated[int, Field(ge=0)]]
    recordings_per_patient: int = Field(ge=1)
    min_duration_s: float = Field(gt=10)
    max_duration_s: float = Field(gt=10)
    seizure_recording_fraction: float = Field(ge=0, le=1)
    broken_files: int = Field(ge=0)
    variant_fractions: SynthVariantFractions
    background_recordings: SplitCounts
    background_duration_s: float = Field(gt=10)

    @model_validator(mode="after")
    def _check(self) -> SynthConfig:
        unknown = set(self.patients) - set(SPLITS)
        if unknown:
            raise ValueError(f"patients: unknown split(s) {sorted(unknown)}; use {list(SPLITS)}")
        if self.max_duration_s < self.min_duration_s:
            raise ValueError("max_duration_s must be >= min_duration_s")
        return self

    def split_seed(self, split: str) -> int:
        """The seed a split is drawn from: `eval_seed` for eval when set (other eval draws, same
        train and dev), `seed` otherwise."""
        return self.eval_seed if split == "eval" and self.eval_seed is not None else self.seed


class PreprocessConfig(_Strict):
    sample_rate_hz: int = Field(gt=0)
    bandpass_hz: tuple[float, float]
    bandpass_order: int = Field(ge=1, le=10)
    notch_hz: float | None  # null: no notch filter
    notch_quality: float = Field(gt=0)
    normalisation: Literal["median_iqr", "mean_std"]
    clip: float = Field(gt=0)
    num_workers: int = Field(ge=0)
    max_failed_fraction: float = Field(ge=0, le=1)
    # Fewest of the 19 electrodes (read or reconstructed, szflow.data.electrodes) a recording needs.
    min_electrodes: int = Field(ge=1, le=len(ELECTRODES))

    @field_validator("bandpass_hz")
    @classmethod
    def _band(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 < value[0] < value[1]:
            raise ValueError("bandpass_hz must be [low, high] with 0 < low < high")
        return value


class SamplerConfig(_Strict):
    window_s: float = Field(gt=0)
    # Relative weights of training windows that hold mostly seizure, part seizure, or none.
    seizure_weight: float = Field(ge=0)
    partial_weight: float = Field(ge=0)
    background_weight: float = Field(ge=0)
    # Seizure-free windows around the training frames the classical baseline scores highest (the
    # top `hard_background_top_fraction` of background frames): seizure-like artifacts
    # (szflow.train.hard_negatives). 0 turns the class off.
    hard_background_weight: float = Field(ge=0)
    hard_background_top_fraction: float = Field(gt=0, le=1)
    inference_overlap_s: float = Field(ge=0)

    @model_validator(mode="after")
    def _check(self) -> SamplerConfig:
        if self.seizure_weight + self.partial_weight + self.background_weight + self.hard_background_weight <= 0:
            raise ValueError("at least one sampler weight must be positive")
        if self.inference_overlap_s >= self.window_s:
            raise ValueError("inference_overlap_s must be smaller than window_s")
        return self


class ModelConfig(_Strict):
    # One input channel per electrode (SharedParams checks it against ELECTRODES; the model itself
    # takes any count, so its unit tests can use small ones).
    in_channels: int = Field(ge=1)
    frame_rate_hz: float = Field(gt=0)
    encoder_channels: list[Annotated[int, Field(ge=1)]] = Field(min_length=1)
    # Features per electrode kept in electrode order (where the activity is).
    encoder_spatial_channels: int = Field(ge=0)
    n_layers: int = Field(ge=1)
    d_model: int = Field(ge=8)
    d_state: int = Field(ge=1)
    d_conv: int = Field(ge=1)
    expand: int = Field(ge=1)
    chunk_size: int = Field(ge=1)
    dropout: float = Field(ge=0, lt=1)


class TrainConfig(_Strict):
    seed: int
    val_fraction: float = Field(gt=0, lt=1)
    val_seed: int
    pos_weight: float = Field(gt=0)
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    warmup_steps: int = Field(ge=0)
    max_steps: int = Field(ge=1)
    eval_every_steps: int = Field(ge=1)
    checkpoint_every_steps: int = Field(ge=1)
    patience_evals: int = Field(ge=1)
    grad_clip: float = Field(gt=0)
    selection_fa_per_24h: int = Field(ge=0)
    # Electrode dropout: this fraction of training windows loses 1..electrode_dropout_max random
    # electrodes (zeroed, marked absent, re-referenced), so the network copes with missing ones.
    electrode_dropout_probability: float = Field(ge=0, le=1)
    electrode_dropout_max: int = Field(ge=0)

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.electrode_dropout_probability > 0 and self.electrode_dropout_max < 1:
            raise ValueError("electrode_dropout_max must be >= 1 when electrode_dropout_probability > 0")
        if self.electrode_dropout_max >= len(ELECTRODES):
            raise ValueError(f"electrode_dropout_max must be below {len(ELECTRODES)} (the electrodes there are)")
        return self


# The keys of `EvalConfig.tuning_grid`: the post-processing search.
EVAL_SEARCH_KEYS = ("threshold_grid", "smoothing_grid_s", "min_duration_grid_s", "merge_gap_grid_s",
                    "hysteresis_low_grid")


class EvalConfig(_Strict):
    # Integers or strings only as keys downstream: never floats (DESIGN.md §10).
    operating_points_fa_per_24h: list[float] = Field(min_length=1)
    threshold_grid: list[float] = Field(min_length=1)
    smoothing_grid_s: list[float] = Field(min_length=1)
    min_duration_grid_s: list[float] = Field(min_length=1)
    merge_gap_grid_s: list[float] = Field(min_length=1)
    # Lower thresholds that extend an event once the threshold is crossed; null: no hysteresis.
    hysteresis_low_grid: list[Annotated[float, Field(gt=0, lt=1)] | None] = Field(min_length=1)
    # How much more whole splits' false-alarm counts vary than their patient clustering says (1: no
    # more); it widens the prediction certification rests on (szflow.scoring.intervals).
    between_split_dispersion: float = Field(ge=1)
    timeline_recordings: int = Field(ge=0)

    def tuning_grid(self) -> dict[str, list]:
        """The post-processing grid as keyword arguments of `tune_operating_points`."""
        return {key: getattr(self, key) for key in EVAL_SEARCH_KEYS}


class StreamConfig(_Strict):
    # `szflow stream` (szflow.stream, docs/stream.md): how often the newest frames are scored, how
    # much of the future the bidirectional network may see, and how long the normalisation
    # statistics look back; when a silent stream counts as stalled and, then, as gone.
    hop_s: float = Field(gt=0)
    lookahead_s: float = Field(ge=0)
    alarm_at: Literal["onset", "confirmed"]
    stats_window_s: float = Field(gt=0)
    stall_s: float = Field(gt=0)
    vanish_s: float = Field(gt=0)


class SharedParams(_Strict):
    hw: str
    data: DataConfig
    synth: SynthConfig
    preprocess: PreprocessConfig
    sampler: SamplerConfig
    model: ModelConfig
    train: TrainConfig
    eval: EvalConfig
    stream: StreamConfig

    @model_validator(mode="after")
    def _sections_agree(self) -> SharedParams:
        if self.model.in_channels != len(ELECTRODES):
            raise ValueError(f"model.in_channels ({self.model.in_channels}) must be {len(ELECTRODES)}, "
                             f"one per electrode that preprocessing keeps ({' '.join(ELECTRODES)})")
        samples = self.preprocess.sample_rate_hz / self.model.frame_rate_hz
        if samples != int(samples):
            raise ValueError(f"model.frame_rate_hz ({self.model.frame_rate_hz:g}) must divide "
                             f"preprocess.sample_rate_hz ({self.preprocess.sample_rate_hz}) into whole "
                             "samples per frame")
        return self


# ----------------------------------------------------------------------------- hardware profile
class HardwareConfig(_Strict):
    executor: Literal["local", "modal"]
    device: Literal["auto", "cpu", "cuda"]
    gpu: str | None  # Modal GPU string (e.g. A100-80GB); null for the local executor
    gpus: int = Field(ge=1)
    cpus: float = Field(gt=0)
    memory_mb: int = Field(gt=0)
    timeout_s: int = Field(gt=0)
    retries: int = Field(ge=0)
    train_batch_size: int = Field(ge=1)
    inference_batch_size: int = Field(ge=1)
    num_workers: int = Field(ge=0)
    pin_memory: bool
    persistent_workers: bool
    prefetch_factor: int | None = Field(ge=1)  # null: torch's default; must be null when num_workers is 0
    # auto: bf16 where the device has native bf16 (CUDA, a CPU with AVX512-BF16/AMX), else fp32.
    precision: Literal["auto", "fp32", "bf16", "fp16"]
    grad_accumulation: int = Field(ge=1)
    mamba_impl: Literal["auto", "torch", "cuda"]
    wandb_mode: Literal["online", "offline", "disabled"]

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
    def eval(self) -> EvalConfig:
        return self.shared.eval

    @property
    def stream(self) -> StreamConfig:
        return self.shared.stream

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
        key = ".".join(str(part) for part in item["loc"])
        if not key:  # a check across sections names its keys itself
            lines.append(f"{path}: {item['msg'].removeprefix('Value error, ')}")
        elif item["type"] == "extra_forbidden":
            lines.append(f"{path}: unknown key '{key}'")
        elif item["type"] == "missing":
            lines.append(f"{path}: missing key '{key}'")
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
    if "hw" not in shared_data:
        raise ConfigError(f"{shared_path}: missing key 'hw'")
    hw_name = shared_data["hw"]
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

"""The corpus plan: patients, sessions, recordings, seizures and broken files, drawn from the seed.

Everything random that decides *what* is in a split (and so what its annotations say) is drawn
here from that split's own generator; the signals are drawn later from a per-recording generator
keyed by split and position in the split. So a split depends only on its seed and its own
settings: more (or fewer) training patients leave dev and eval byte for byte as they were, and a
change to the training corpus never moves the benchmark. The eval split can be drawn from a seed
of its own (`synth.eval_seed`) for independent eval draws. The long seizure-free background
recordings and the real-world forms (szflow.synth.variants) have streams of their own too, so
adding them leaves every other recording as it was.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from szflow.config import SPLITS, SynthConfig
from szflow.synth.channels import MONTAGES, SignalSpec, signal_list
from szflow.synth.variants import VARIANT_KINDS, Variant, draw_variant

RATES: tuple[float, ...] = (250.0, 256.0, 400.0, 512.0, 1000.0)
# TUSZ is mostly 250 Hz; the high rates are rare (and the slowest to generate).
RATE_WEIGHTS: tuple[float, ...] = (0.72, 0.12, 0.08, 0.05, 0.03)
MONTAGE_WEIGHTS: tuple[float, ...] = (0.5, 0.35, 0.15)
BROKEN_KINDS: tuple[str, ...] = ("truncated", "bad_header", "duration_mismatch")
MIN_SEIZURE_S, MAX_SEIZURE_S = 10.0, 300.0
# Seizures keep this much background before them, this much after, and this gap between them.
LEAD_S, TAIL_S, GAP_S = 5.0, 2.0, 30.0

# Focal onsets: lateral sites (a midline focus has no TCP channel of its own), temporal favoured.
FOCI: tuple[str, ...] = ("FP1", "FP2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2",
                         "F7", "F8", "T3", "T4", "T5", "T6")
FOCUS_WEIGHTS = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0.5, 0.5, 2, 2, 3, 3, 2, 2], dtype=float)


@dataclass(frozen=True)
class PatientTraits:
    """What stays the same across one patient's recordings (and differs between patients)."""

    background_uv: float  # RMS of the 1/f background at one site
    exponent: float  # 1/f^exponent power spectrum
    alpha_hz: float
    alpha_uv: float  # RMS of the posterior rhythm at O1/O2 with eyes closed
    syndrome: str  # "focal" | "generalized"
    focus: str  # onset site of focal seizures
    focal_label: str  # how this patient's focal seizures are typed (fnsz / cpsz / spsz)
    seizure_scale: float  # amplitude factor: some patients' seizures are subtle
    ictal_start_hz: float
    ictal_end_hz: float
    spread_speed: float  # field growth in scalp units (head radius = 1) per second
    generalizes: float  # chance a focal seizure spreads to both hemispheres
    typical_seizure_s: float
    artifact_rate: float  # multiplies every artifact rate: some patients move and chew more


@dataclass(frozen=True)
class SeizureSpec:
    kind: str  # "focal" | "generalized" | "absence" | "tonic_clonic"
    label: str  # TUSZ type: fnsz cpsz spsz gnsz absz tcsz
    start: float
    stop: float
    focus: str
    lambda0: float  # initial field radius (scalp units)
    lambda_max: float  # final field radius
    spread_speed: float  # radius growth per second
    f_start: float  # ictal rhythm frequency at onset (Hz) ...
    f_end: float  # ... and at the end
    amplitude_uv: float  # peak-to-peak amplitude of the established discharge at the onset site
    spikiness: float  # 0: sinusoidal rhythm, 1: spike-and-wave
    lvfa: bool  # low-voltage fast activity at onset
    postictal_s: float  # duration of post-ictal slowing (0 for none)
    postictal_uv: float

    @property
    def duration(self) -> float:
        return self.stop - self.start


@dataclass(frozen=True)
class RecordingSpec:
    seed: int  # the corpus seed
    index: int  # position in the corpus plan
    split: str
    subject: str
    session: str  # s001
    year: int
    montage: str
    token: str  # t000
    rate: float
    duration_s: float
    start: dt.datetime
    signals: tuple[SignalSpec, ...]
    traits: PatientTraits
    seizures: tuple[SeizureSpec, ...] = ()
    broken: str | None = None  # one of BROKEN_KINDS
    split_position: int = 0  # position within its split (or its background set): keys its generators
    variant: Variant = field(default_factory=Variant)  # the form it is written in (szflow.synth.variants)
    background: bool = False  # one of the split's long seizure-free background recordings

    def stream(self, purpose: int) -> np.random.SeedSequence:
        """Seed of this recording's generator for `purpose` (1: signals, 2: breaking the file)."""
        keys = [self.seed, purpose, SPLITS.index(self.split), self.split_position]
        return np.random.SeedSequence(keys + [1] if self.background else keys)

    @property
    def recorded_s(self) -> float:
        """Seconds of EEG in the file: the duration less an EDF+D gap."""
        return self.variant.recorded_s(self.duration_s)

    @property
    def bname(self) -> str:
        return f"{self.subject}_{self.session}_{self.token}"

    @property
    def relpath(self) -> str:
        """EDF path relative to the corpus root, in the TUSZ layout."""
        return (f"edf/{self.split}/{self.subject}/{self.session}_{self.year}/{self.montage}/"
                f"{self.bname}.edf")


@dataclass
class CorpusPlan:
    seed: int
    recordings: list[RecordingSpec] = field(default_factory=list)

    def split(self, name: str) -> list[RecordingSpec]:
        return [r for r in self.recordings if r.split == name]


def _subjects(rng: np.random.Generator, count: int, seen: set[str]) -> list[str]:
    """`count` new 8-lowercase-letter subject ids (TUSZ style), none in `seen` (which they join), so
    patients never collide across splits."""
    names: list[str] = []
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    while len(names) < count:
        name = "".join(rng.choice(letters, size=8))
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def _traits(rng: np.random.Generator) -> PatientTraits:
    syndrome = "focal" if rng.random() < 0.7 else "generalized"
    return PatientTraits(
        background_uv=float(rng.uniform(10.0, 18.0)),
        exponent=float(rng.uniform(1.6, 2.2)),
        alpha_hz=float(rng.uniform(8.5, 11.0)),
        alpha_uv=float(rng.uniform(12.0, 30.0)),
        syndrome=syndrome,
        focus=str(rng.choice(FOCI, p=FOCUS_WEIGHTS / FOCUS_WEIGHTS.sum())),
        focal_label=str(rng.choice(["fnsz", "cpsz", "spsz"], p=[0.6, 0.3, 0.1])),
        seizure_scale=float(rng.uniform(0.45, 1.3)),
        ictal_start_hz=float(rng.uniform(5.0, 8.5)),
        ictal_end_hz=float(rng.uniform(2.2, 3.5)),
        spread_speed=float(rng.uniform(0.02, 0.08)),
        generalizes=float(rng.uniform(0.0, 0.5)),
        typical_seizure_s=float(np.exp(rng.uniform(np.log(20.0), np.log(120.0)))),
        artifact_rate=float(np.exp(rng.uniform(np.log(0.5), np.log(2.0)))),
    )


def _seizure_kind(rng: np.random.Generator, traits: PatientTraits) -> str:
    if traits.syndrome == "focal":
        return "focal" if rng.random() < 0.9 else "tonic_clonic"
    return str(rng.choice(["generalized", "absence", "tonic_clonic"], p=[0.45, 0.35, 0.2]))


def _wanted_duration(rng: np.random.Generator, kind: str, traits: PatientTraits) -> float:
    if kind == "absence":
        return float(rng.uniform(10.0, 20.0))
    if kind == "tonic_clonic":
        return float(rng.uniform(40.0, 150.0))
    if kind == "generalized":
        return float(rng.uniform(10.0, 90.0))
    return float(np.clip(traits.typical_seizure_s * np.exp(rng.normal(0.0, 0.4)), MIN_SEIZURE_S, MAX_SEIZURE_S))


def _seizure(rng: np.random.Generator, kind: str, traits: PatientTraits, start: float, stop: float) -> SeizureSpec:
    scale = traits.seizure_scale
    if kind == "focal":
        generalizes = rng.random() < traits.generalizes
        return SeizureSpec(
            kind, traits.focal_label, start, stop, traits.focus,
            lambda0=float(rng.uniform(0.2, 0.3)), lambda_max=float(rng.uniform(1.5, 2.5) if generalizes
                                                                   else rng.uniform(0.45, 0.75)),
            spread_speed=traits.spread_speed * float(rng.uniform(0.7, 1.4)),
            f_start=traits.ictal_start_hz + float(rng.normal(0.0, 0.4)),
            f_end=traits.ictal_end_hz + float(rng.normal(0.0, 0.2)),
            amplitude_uv=scale * float(rng.uniform(70.0, 180.0)),
            spikiness=float(rng.uniform(0.2, 0.7)), lvfa=bool(rng.random() < 0.5),
            postictal_s=float(rng.uniform(30.0, 120.0)), postictal_uv=scale * float(rng.uniform(15.0, 40.0)),
        )
    if kind == "generalized":
        return SeizureSpec(
            kind, "gnsz", start, stop, "FZ", lambda0=1.2, lambda_max=2.5, spread_speed=0.5,
            f_start=float(rng.uniform(3.5, 5.0)), f_end=float(rng.uniform(2.2, 3.2)),
            amplitude_uv=scale * float(rng.uniform(100.0, 250.0)), spikiness=float(rng.uniform(0.3, 0.8)),
            lvfa=bool(rng.random() < 0.3), postictal_s=float(rng.uniform(20.0, 60.0)),
            postictal_uv=scale * float(rng.uniform(15.0, 35.0)),
        )
    if kind == "absence":
        return SeizureSpec(
            kind, "absz", start, stop, "FZ", lambda0=1.6, lambda_max=1.6, spread_speed=0.0,
            f_start=float(rng.uniform(3.2, 3.8)), f_end=float(rng.uniform(2.5, 3.0)),
            amplitude_uv=max(scale, 0.8) * float(rng.uniform(200.0, 400.0)), spikiness=1.0, lvfa=False,
            postictal_s=0.0, postictal_uv=0.0,
        )
    return SeizureSpec(
        kind, "tcsz", start, stop, "CZ", lambda0=2.0, lambda_max=2.5, spread_speed=0.2,
        f_start=float(rng.uniform(3.5, 5.0)), f_end=float(rng.uniform(1.0, 1.8)),
        amplitude_uv=max(scale, 0.8) * float(rng.uniform(150.0, 300.0)), spikiness=0.9, lvfa=True,
        postictal_s=float(rng.uniform(60.0, 150.0)), postictal_uv=float(rng.uniform(20.0, 40.0)),
    )


def _seizures(rng: np.random.Generator, traits: PatientTraits, duration: float) -> tuple[SeizureSpec, ...]:
    count = int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))
    room = duration - LEAD_S - TAIL_S
    count = max(0, min(count, int((room + GAP_S) // (MIN_SEIZURE_S + GAP_S))))
    if count == 0:
        return ()
    kinds = [_seizure_kind(rng, traits) for _ in range(count)]
    lengths = np.array([_wanted_duration(rng, k, traits) for k in kinds])
    available = room - GAP_S * (count - 1)
    if lengths.sum() > available:
        # Shrink towards the 10 s minimum so that every seizure still fits in the recording.
        excess = lengths - MIN_SEIZURE_S
        lengths = MIN_SEIZURE_S + excess * (available - MIN_SEIZURE_S * count) / excess.sum()
    lengths = np.clip(lengths, MIN_SEIZURE_S, MAX_SEIZURE_S)
    slack = max(available - lengths.sum(), 0.0)
    gaps = rng.dirichlet(np.ones(count + 1)) * slack
    specs = []
    cursor = LEAD_S
    for i, (kind, length) in enumerate(zip(kinds, lengths)):
        cursor += gaps[i]
        start = round(float(cursor), 2)
        stop = round(float(min(start + length, duration - TAIL_S)), 2)
        specs.append(_seizure(rng, kind, traits, start, stop))
        cursor = stop + GAP_S
    return tuple(specs)


def _split_rng(config: SynthConfig, split: str, purpose: int, *keys: int) -> np.random.Generator:
    """The generator of one split for `purpose` (0: the plan, 3: broken files, 4: variants,
    5: background recordings), further keyed by `keys`."""
    return np.random.default_rng(np.random.SeedSequence(
        [config.split_seed(split), 0x5EED, purpose, SPLITS.index(split), *keys]))


def make_plan(config: SynthConfig) -> CorpusPlan:
    """Draw the whole corpus layout from the config's seeds (pure: no files, no clock)."""
    plan = CorpusPlan(seed=config.seed)
    low = int(np.ceil(config.min_duration_s))
    high = max(int(np.floor(config.max_duration_s)), low)
    montages = list(MONTAGES)
    taken: set[str] = set()
    for split in SPLITS:
        rng = _split_rng(config, split, 0)
        first = len(plan.recordings)
        for subject in _subjects(rng, int(config.patients.get(split, 0)), taken):
            traits = _traits(rng)
            n_sessions = int(rng.integers(1, min(3, config.recordings_per_patient) + 1))
            # Recordings go to sessions in order; session numbers have gaps, as in TUSZ.
            session_of = np.sort(rng.integers(0, n_sessions, size=config.recordings_per_patient))
            session_of[0] = 0
            numbers = np.cumsum(rng.integers(1, 3, size=n_sessions))
            year = int(rng.integers(2002, 2016))
            token_count: dict[int, int] = {}
            sessions: dict[int, tuple[str, int, str, float, dt.datetime]] = {}
            for k in session_of:
                k = int(k)
                if k not in sessions:
                    year += int(rng.integers(0, 2)) if k else 0
                    montage = str(rng.choice(montages, p=MONTAGE_WEIGHTS))
                    rate = float(rng.choice(RATES, p=RATE_WEIGHTS))
                    start = dt.datetime(year, int(rng.integers(1, 13)), int(rng.integers(1, 29)),
                                        int(rng.integers(7, 20)), int(rng.integers(0, 60)), int(rng.integers(0, 60)))
                    sessions[k] = (f"s{int(numbers[k]):03d}", year, montage, rate, start)
                session, s_year, montage, rate, start = sessions[k]
                token = token_count.get(k, 0)
                token_count[k] = token + 1
                duration = float(rng.integers(low, high + 1))
                plan.recordings.append(RecordingSpec(
                    seed=config.split_seed(split), index=len(plan.recordings), split=split, subject=subject, session=session, year=s_year,
                    montage=montage, token=f"t{token:03d}", rate=rate, duration_s=duration,
                    start=start + dt.timedelta(seconds=int(token * (high + 60))),
                    signals=tuple(signal_list(rng, montage, rate)), traits=traits,
                    split_position=len(plan.recordings) - first,
                ))
        _assign_seizures(rng, plan, split, config.seizure_recording_fraction)
    _assign_broken(config, plan, config.broken_files)
    for split in SPLITS:
        _assign_variants(config, plan, split)
    for split in SPLITS:
        _add_background(config, plan, split, taken)
    return plan


def _replace(plan: CorpusPlan, index: int, **changes) -> None:
    spec = plan.recordings[index]
    plan.recordings[index] = RecordingSpec(**{**spec.__dict__, **changes})


def _assign_seizures(rng: np.random.Generator, plan: CorpusPlan, split: str, fraction: float) -> None:
    members = [r.index for r in plan.split(split)]
    if not members or fraction <= 0:
        return
    # At least one per split, so every split can be scored.
    count = min(len(members), max(1, round(fraction * len(members))))
    for index in sorted(rng.choice(members, size=count, replace=False)):
        spec = plan.recordings[int(index)]
        _replace(plan, int(index), seizures=_seizures(rng, spec.traits, spec.duration_s))


def _assign_broken(config: SynthConfig, plan: CorpusPlan, count: int) -> None:
    splits = [s for s in SPLITS if plan.split(s)]
    if not splits:
        return
    # train first, then dev, eval: with 2 or more, train and a held-out split both get one.
    order = ["train"] + [s for s in ("dev", "eval") if s in splits] if "train" in splits else splits
    used: set[int] = set()
    for i in range(count):
        split = order[i % len(order)]
        free = [r for r in plan.split(split) if r.index not in used]
        if not free:
            free = [r for r in plan.recordings if r.index not in used]
            if not free:
                return
        # Prefer seizure-free recordings: a broken file is skipped, and seizures are scarce.
        quiet = [r for r in free if not r.seizures]
        pool = quiet or free
        # A generator per (split, file): which file of a split breaks depends on that split alone.
        rng = _split_rng(config, split, 3, i)
        chosen = pool[int(rng.integers(len(pool)))]
        used.add(chosen.index)
        _replace(plan, chosen.index, broken=BROKEN_KINDS[i % len(BROKEN_KINDS)])


def _assign_variants(config: SynthConfig, plan: CorpusPlan, split: str) -> None:
    """Give `variant_fractions` of the split's patient recordings a real-world form each (not the
    broken files, whose damage is their point); the EDF+D gap prefers a recording with seizures."""
    members = plan.split(split)
    pool = [r.index for r in members if r.broken is None]
    rng = _split_rng(config, split, 4)
    # The EDF+D gap is the one form that may not fit a recording: it chooses first.
    for kind in sorted(VARIANT_KINDS, key=lambda k: k != "discontinuous"):
        count = round(getattr(config.variant_fractions, kind) * len(members))
        if kind == "discontinuous":
            with_seizures = [i for i in pool if plan.recordings[i].seizures]
            without = [i for i in pool if not plan.recordings[i].seizures]
            order = [*rng.permutation(with_seizures), *rng.permutation(without)]
        else:
            order = list(rng.permutation(pool))
        given = 0
        for index in order:
            if given == count:
                break
            spec = plan.recordings[int(index)]
            variant = draw_variant(rng, kind, spec.duration_s, [(z.start, z.stop) for z in spec.seizures])
            if variant is None:
                continue
            _replace(plan, int(index), variant=variant)
            pool.remove(int(index))
            given += 1


def _add_background(config: SynthConfig, plan: CorpusPlan, split: str, taken: set[str]) -> None:
    """The split's long seizure-free recordings, one new patient each (a session of one recording)."""
    count = getattr(config.background_recordings, split)
    if count == 0:
        return
    rng = _split_rng(config, split, 5)
    duration = float(round(config.background_duration_s))
    for position in range(count):
        # One recording's draws at a time: a recording does not move when more are added after it.
        subject = _subjects(rng, 1, taken)[0]
        traits = _traits(rng)
        montage = str(rng.choice(list(MONTAGES), p=MONTAGE_WEIGHTS))
        rate = float(rng.choice(RATES, p=RATE_WEIGHTS))
        year = int(rng.integers(2002, 2016))
        start = dt.datetime(year, int(rng.integers(1, 13)), int(rng.integers(1, 29)), int(rng.integers(7, 20)),
                            int(rng.integers(0, 60)), int(rng.integers(0, 60)))
        plan.recordings.append(RecordingSpec(
            seed=config.split_seed(split), index=len(plan.recordings), split=split, subject=subject,
            session=f"s{int(rng.integers(1, 4)):03d}", year=year, montage=montage, token="t000", rate=rate,
            duration_s=duration, start=start, signals=tuple(signal_list(rng, montage, rate)), traits=traits,
            split_position=position, background=True,
        ))

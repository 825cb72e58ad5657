"""One synthetic recording: site potentials -> referenced EDF signals, plus its annotations.

Order matters and follows the physics: brain activity and seizures at the scalp sites, then
artifacts of non-cerebral origin (eyes, muscle, heart, movement) on the same sites, then the
montage reference is subtracted (so ear references carry ECG and temporal activity into every
channel, as in real linked-ear recordings), then what happens at single electrodes (pops, line
noise, a flat channel).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from szflow.data.annotations import Annotation, Event
from szflow.data.edf import electrode_name
from szflow.synth import artifacts
from szflow.synth.background import background
from szflow.synth.channels import SITE_INDEX, tcp_channels
from szflow.synth.noise import band, pink, shaped_noise
from szflow.synth.plan import RecordingSpec
from szflow.synth.seizures import channel_events, render
from szflow.synth.variants import own_site

# Extra EEG inputs that are not one of the modelled sites carry a site's signal plus their own noise.
_OWN_NOISE_UV = 3.0


@dataclass
class SimulatedRecording:
    spec: RecordingSpec
    signals: list[np.ndarray]  # float32 physical values, one per spec.signals entry
    artifacts: list[tuple[str, float, float]]  # (kind, start_s, stop_s) of what was added
    # Referential signals of the sites the recording's form needs beyond its signal list
    # (spec.variant.extra_sites(): FT9/FT10 of CHB-MIT), without electrode-level artifacts.
    extra_sites: dict[str, np.ndarray] = field(default_factory=dict)

    def annotation_bi(self) -> Annotation:
        events = [Event(s.start, s.stop, "seiz") for s in self.spec.seizures]
        return Annotation(bname=self.spec.bname, duration_s=self.spec.duration_s, events=events)

    def annotation_types(self) -> Annotation:
        events = []
        for seizure in self.spec.seizures:
            for channel, start, stop in channel_events(seizure, tcp_channels(self.spec.montage)):
                events.append(Event(start, stop, seizure.label, channel))
        return Annotation(bname=self.spec.bname, duration_s=self.spec.duration_s, events=events)


def signal_rng(spec: RecordingSpec) -> np.random.Generator:
    return np.random.default_rng(spec.stream(1))


def simulate(spec: RecordingSpec) -> SimulatedRecording:
    rng = signal_rng(spec)
    fs = spec.rate
    n = round(spec.duration_s * fs)
    rate = spec.traits.artifact_rate
    v = background(rng, n, fs, spec.traits)
    for seizure in spec.seizures:
        render(rng, v, fs, seizure)

    spans: list[tuple[str, float, float]] = []
    spans += artifacts.eye_blinks(rng, v, fs, rate)
    spans += artifacts.eye_movements(rng, v, fs, rate)
    spans += artifacts.muscle_bursts(rng, v, fs, rate)
    spans += artifacts.chewing(rng, v, fs, rate)
    spans += artifacts.rhythmic_movement(rng, v, fs, rate)
    kinds = {s.kind for s in spec.signals}
    schedule = artifacts.photic_schedule(rng, spec.duration_s) if "photic" in kinds and rng.random() < 0.4 else []
    spans += artifacts.photic_driving(rng, v, fs, schedule)
    heart = artifacts.ecg(rng, n, fs)
    artifacts.add_ecg(rng, v, heart)

    if spec.montage == "02_tcp_le":
        reference = 0.5 * (v[SITE_INDEX["A1"]] + v[SITE_INDEX["A2"]])
    else:
        # A machine reference near the vertex, plus its own common-mode noise.
        common = shaped_noise(rng, 1, n, fs, pink(2.0))[0]
        reference = 0.35 * v[SITE_INDEX["CZ"]] + np.float32(rng.uniform(2.0, 6.0)) * common

    eeg_rows = [i for i, s in enumerate(spec.signals) if s.kind == "eeg"]
    eeg = np.empty((len(eeg_rows), n), dtype=np.float32)
    for row, i in enumerate(eeg_rows):
        s = spec.signals[i]
        np.subtract(v[SITE_INDEX[s.site]], reference, out=eeg[row])
        if not _is_electrode(s.label) and s.label.split()[-1].split("-")[0] != s.site:
            # SP1, C3P, LUC ...: a nearby input, not the modelled site itself.
            eeg[row] += _OWN_NOISE_UV * shaped_noise(rng, 1, n, fs, pink(1.5))[0]
    listed = {own_site(s) for s in spec.signals}
    extra_sites = {site: v[SITE_INDEX[site]] - reference for site in spec.variant.extra_sites() if site not in listed}
    del v
    names = [spec.signals[i].label for i in eeg_rows]
    spans += artifacts.electrode_pops(rng, eeg, fs, rate, names)
    spans += artifacts.line_noise(rng, eeg, fs)
    # Only a 10-20 electrode goes flat here: that is the case the pipeline has to cope with.
    electrode_rows = [r for r, i in enumerate(eeg_rows) if _is_electrode(spec.signals[i].label)]
    spans += artifacts.flat_channel(rng, eeg, fs, names, electrode_rows)

    signals: list[np.ndarray] = []
    eeg_iter = iter(eeg)
    for s in spec.signals:
        if s.kind == "eeg":
            signals.append(next(eeg_iter))
        elif s.kind == "ekg":
            wander = 30.0 * shaped_noise(rng, 1, n, fs, band(0.05, 0.5, 0.1))[0]
            signals.append((np.float32(rng.uniform(300.0, 1500.0)) * heart + wander).astype(np.float32))
        elif s.kind == "photic":
            signals.append(artifacts.photic_marker(n, fs, schedule))
        elif s.kind == "resp":
            signals.append(artifacts.respiration(rng, n, fs))
        elif s.kind == "emg":
            signals.append(np.float32(rng.uniform(3.0, 10.0))
                            * shaped_noise(rng, 1, n, fs, band(20.0, min(100.0, 0.42 * fs), 8.0))[0])
        elif s.kind == "open":
            # An unconnected input: amplifier noise and a lot of mains pickup.
            t = np.arange(n) / fs
            hum = rng.uniform(10.0, 80.0) * np.sin(2 * np.pi * 60.0 * t + rng.uniform(0, 6.3))
            signals.append((hum + 2.0 * rng.standard_normal(n)).astype(np.float32))
        elif s.kind == "slow":
            signals.append(np.zeros(round(spec.duration_s * s.rate), dtype=np.float32))
        else:  # pragma: no cover - the plan only makes the kinds above
            raise ValueError(f"unknown signal kind {s.kind!r}")
    return SimulatedRecording(spec=spec, signals=signals, artifacts=spans, extra_sites=extra_sites)


def _is_electrode(label: str) -> bool:
    return electrode_name(label) is not None

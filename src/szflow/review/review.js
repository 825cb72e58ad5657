// szflow review page. Data: #review-meta (JSON) and base64 blobs (see szflow/review/page.py).
// Charts are uPlot's; this script decodes the data, picks the resolution for the zoom level,
// recomputes events for the chosen operating point (exactly as szflow.postprocess does) and
// handles the recording list, navigation and the keyboard.
(function () {
  "use strict";
  const META = JSON.parse(document.getElementById("review-meta").textContent);
  const POINT_KEYS = Object.keys(META.points);
  const PAGE_LENGTHS = [10, 20, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600];
  const COLORS = {reference: "rgba(30, 150, 60, 0.16)", hit: "rgba(40, 110, 220, 0.85)",
                  falseAlarm: "rgba(220, 50, 40, 0.85)", miss: "rgba(230, 140, 0, 0.9)"};
  const GAINS = [1, 2, 3, 5, 8, 12, 20, 40];  // interquartile ranges of signal per channel spacing

  function blobBytes(id) {
    const text = document.getElementById(id).textContent.trim();
    if (Uint8Array.fromBase64) return Uint8Array.fromBase64(text);
    const bin = atob(text), out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  // ------------------------------------------------------------ post-processing (szflow.postprocess)
  // Python's round() rounds halves to even; smoothing_window_frames uses it.
  function roundHalfEven(x) {
    const f = Math.floor(x), d = x - f;
    if (d > 0.5) return f + 1;
    if (d < 0.5) return f;
    return f % 2 === 0 ? f : f + 1;
  }
  function smoothingWindowFrames(smoothingS, rate) {
    const frames = roundHalfEven(smoothingS * rate);
    if (frames <= 1) return 1;
    return frames % 2 === 1 ? frames : frames + 1;
  }
  function smooth(probs, rate, smoothingS) {
    const n = probs.length, x = new Float64Array(n);
    for (let i = 0; i < n; i++) x[i] = probs[i];
    const width = smoothingWindowFrames(smoothingS, rate);
    if (width === 1 || n === 0) return x;
    const half = Math.floor(width / 2), cum = new Float64Array(n + 1);
    for (let i = 0; i < n; i++) cum[i + 1] = cum[i] + x[i];  // sequential, as numpy's cumsum
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const lo = Math.max(i - half, 0), hi = Math.min(i + half + 1, n);
      out[i] = (cum[hi] - cum[lo]) / (hi - lo);
    }
    return out;
  }
  function maskRuns(x, level) {
    const runs = [];
    let start = -1;
    for (let i = 0; i < x.length; i++) {
      if (x[i] >= level) { if (start < 0) start = i; }
      else if (start >= 0) { runs.push([start, i]); start = -1; }
    }
    if (start >= 0) runs.push([start, x.length]);
    return runs;
  }
  function thresholdRuns(x, threshold, low) {
    if (low === null || low >= threshold) return maskRuns(x, threshold);
    const runs = [];
    for (const [a, b] of maskRuns(x, low)) {
      for (let i = a; i < b; i++) if (x[i] >= threshold) { runs.push([i, b]); break; }
    }
    return runs;
  }
  function probsToEvents(probs, rate, duration, point) {
    const x = smooth(probs, rate, point.smoothing_s);
    let events = [];
    for (const [a, b] of thresholdRuns(x, point.threshold, point.hysteresis_low)) {
      const start = a / rate, stop = Math.min(b / rate, duration);
      if (start < duration) events.push([start, stop]);
    }
    if (point.merge_gap_s > 0 && events.length > 1) {
      const merged = [events[0].slice()];
      for (let i = 1; i < events.length; i++) {
        const last = merged[merged.length - 1];
        if (events[i][0] - last[1] < point.merge_gap_s) last[1] = events[i][1];
        else merged.push(events[i].slice());
      }
      events = merged;
    }
    if (point.min_duration_s > 0) events = events.filter(([a, b]) => (b - a) >= point.min_duration_s);
    return {events, smoothed: x};
  }
  // NEDC OVLP: a reference event is a hit if any prediction overlaps it; a prediction overlapping
  // no reference event is a false alarm (strict overlap: touching events do not overlap).
  const overlaps = (a, b) => a[1] > b[0] && a[0] < b[1];
  function score(reference, predicted) {
    const hit = reference.map((r) => predicted.some((h) => overlaps(h, r)));
    const falseAlarm = predicted.map((h) => !reference.some((r) => overlaps(h, r)));
    return {hit, falseAlarm};
  }

  // ------------------------------------------------------------ recordings
  const recordings = META.recordings.map((meta, index) => {
    const bytes = blobBytes(meta.probs);
    return {meta, index, probs: new Float32Array(bytes.buffer, bytes.byteOffset, meta.frames), segments: null,
            cache: {}};
  });
  function analyse(rec, key) {
    if (!rec.cache[key]) {
      const {events, smoothed} = probsToEvents(rec.probs, rec.meta.frameRate, rec.meta.duration, META.points[key]);
      const reference = rec.meta.reference || [];
      const s = score(reference, events);
      rec.cache[key] = {events, smoothed, hit: s.hit, falseAlarm: s.falseAlarm,
                        counts: {events: events.length, hits: s.hit.filter(Boolean).length,
                                 misses: s.hit.filter((h) => !h).length,
                                 false_alarms: s.falseAlarm.filter(Boolean).length}};
    }
    return rec.cache[key];
  }
  function loadSegments(rec) {
    if (rec.segments) return rec.segments;
    const nch = rec.meta.channels.length;
    rec.segments = rec.meta.segments.map((seg) => {
      const bytes = blobBytes(seg.blob);
      const all = new Int8Array(bytes.buffer, bytes.byteOffset, nch * seg.n);
      const channels = [];
      for (let c = 0; c < nch; c++) channels.push(all.subarray(c * seg.n, (c + 1) * seg.n));
      return {rate: seg.rate, start: seg.start, n: seg.n, montages: {referential: {rows: channels, levels: []}}};
    });
    return rec.segments;
  }
  function montageRows(rec, seg, montage) {
    if (!seg.montages[montage]) {
      const names = rec.meta.channels, ref = seg.montages.referential.rows;
      const rows = META.bipolar.map(([a, b]) => {
        const x = ref[names.indexOf(a)], y = ref[names.indexOf(b)], d = new Int16Array(seg.n);
        for (let i = 0; i < seg.n; i++) d[i] = x[i] - y[i];
        return d;
      });
      seg.montages[montage] = {rows, levels: []};
    }
    return seg.montages[montage];
  }
  function rowLabels(rec, montage) {
    return montage === "bipolar" ? META.bipolar.map(([a, b]) => a + "-" + b) : rec.meta.channels;
  }
  // Min/max pyramid: level k holds per bin of 2^k samples the minimum and maximum of each row.
  function level(m, k) {
    if (k === 0) return null;
    while (m.levels.length < k) {
      const j = m.levels.length + 1, prev = m.levels[j - 2];
      m.levels.push(m.rows.map((row, r) => {
        const srcMin = prev ? prev[r].min : row, srcMax = prev ? prev[r].max : row;
        const n = Math.ceil(srcMin.length / 2), min = new Int16Array(n), max = new Int16Array(n);
        for (let i = 0; i < n; i++) {
          const a = 2 * i, b = Math.min(a + 1, srcMin.length - 1);
          min[i] = Math.min(srcMin[a], srcMin[b]);
          max[i] = Math.max(srcMax[a], srcMax[b]);
        }
        return {min, max};
      }));
    }
    return m.levels[k - 1];
  }

  // ------------------------------------------------------------ state
  const state = {rec: null, t0: 0, t1: 30, point: META.defaultPoint, montage: "referential", gain: 5,
                 decimation: null, sort: {column: "recording", descending: false}};
  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k.startsWith("on")) node.addEventListener(k.slice(2), v); else node.setAttribute(k, v);
    }
    for (const child of children) node.append(child);
    return node;
  };
  const clock = (s) => {
    const sign = s < 0 ? "-" : "", t = Math.abs(s);
    const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), sec = t % 60;
    return sign + h + ":" + String(m).padStart(2, "0") + ":" + (sec < 10 ? "0" : "") + sec.toFixed(sec % 1 ? 1 : 0);
  };

  // ------------------------------------------------------------ page skeleton
  const pointSelect = el("select", {id: "point", title: "operating point (false alarms per 24 h on dev)",
                                    onchange: (e) => { setPoint(e.target.value); e.target.blur(); }},
    ...POINT_KEYS.map((k) => el("option", {value: k}, k + " FA/24h")));
  const montageButton = el("button", {id: "montage", onclick: () => toggleMontage()}, "bipolar view (b)");
  const pageSelect = el("select", {id: "page-length", title: "seconds per page",
                                   onchange: (e) => { setLength(+e.target.value); e.target.blur(); }},
    ...PAGE_LENGTHS.map((s) => el("option", {value: s}, s < 60 ? s + " s" : s < 3600 ? s / 60 + " min" : s / 3600 + " h")));
  const gainSelect = el("select", {id: "gain", title: "amplitude: signal per channel spacing",
                                   onchange: (e) => { state.gain = +e.target.value; redraw(); e.target.blur(); }},
    ...GAINS.map((g) => el("option", {value: g}, g + " IQR/div")));
  const toolbar = el("div", {class: "toolbar"},
    el("span", {id: "rec-title"}), pointSelect, montageButton, pageSelect, gainSelect,
    el("button", {onclick: () => jump("previous")}, "◀ event (p)"),
    el("button", {onclick: () => jump("next")}, "event (n) ▶"),
    el("button", {onclick: () => jump("false-alarm")}, "false alarm (f)"),
    el("button", {onclick: () => jump("miss")}, "miss (m)"));
  const status = el("div", {id: "status", class: "status"});
  const swatch = (color, text, id) => el("span", {class: "key", id}, el("i", {style: "background:" + color}), text);
  const legend = el("div", {class: "legend"},
    swatch(COLORS.reference, "reference seizure"), swatch(COLORS.hit, "predicted: hit (OVLP)"),
    swatch(COLORS.falseAlarm, "predicted: false alarm"), swatch(COLORS.miss, "missed seizure"),
    swatch("#c0392b", "threshold (dashed)"), swatch("#8e44ad", "hysteresis low (dotted)"),
    swatch("#1f4e8c", "smoothed probability"));
  const tracesBox = el("div", {id: "traces"}), probBox = el("div", {id: "probability"});
  const listBox = el("div", {id: "recordings"});
  const infoBox = el("div", {id: "info", class: "info"});
  const help = el("div", {class: "help"},
    "Keys: n / p next / previous event, f next false alarm, m next miss, ← → scroll (shift: a page), " +
    "+ / − zoom time, ↑ ↓ amplitude, b bipolar / referential. Drag on the traces to zoom in.");
  document.body.append(
    el("header", {}, el("h1", {}, META.title), el("div", {class: "provenance"}, provenanceLine()),
      el("div", {id: "warnings"}, ...(META.provenance.warnings || []).map((w) => el("p", {class: "warning"}, w)))),
    el("section", {class: "list"}, listBox),
    el("section", {class: "viewer"}, toolbar, status, legend, tracesBox, probBox, help, infoBox));

  function provenanceLine() {
    const p = META.provenance;
    return `checkpoint ${p.checkpoint} · step ${p.step} · params ${p.params_hash || "(none)"} · ` +
      `operating points ${p.operating_points}`;
  }

  // ------------------------------------------------------------ recording list
  const COLUMNS = [["recording", "recording"], ["duration", "duration"], ["reference", "reference"],
                   ["events", "predicted"], ["hits", "hits"], ["misses", "misses"], ["false_alarms", "false alarms"]];
  function listRow(rec) {
    const c = analyse(rec, state.point).counts, ref = rec.meta.reference;
    return {recording: rec.meta.id, duration: rec.meta.duration, reference: ref ? ref.length : null,
            events: c.events, hits: ref ? c.hits : null, misses: ref ? c.misses : null,
            false_alarms: ref ? c.false_alarms : null};
  }
  function renderList() {
    const rows = recordings.map((rec) => ({rec, values: listRow(rec)}));
    const {column, descending} = state.sort;
    rows.sort((a, b) => {
      const x = a.values[column], y = b.values[column];
      const order = x === y ? 0 : x === null ? 1 : y === null ? -1 : x < y ? -1 : 1;
      return descending ? -order : order;
    });
    const head = el("tr", {}, ...COLUMNS.map(([key, label]) => el("th", {
      "data-column": key, class: key === column ? (descending ? "sorted desc" : "sorted asc") : "",
      onclick: () => { state.sort = {column: key, descending: key === column ? !descending : false}; renderList(); }
    }, label)));
    const body = rows.map(({rec, values}) => el("tr", {
      "data-recording": rec.meta.id, class: rec === state.rec ? "current" : "", onclick: () => openRecording(rec)},
      ...COLUMNS.map(([key]) => el("td", {}, key === "duration" ? clock(values[key])
                                              : values[key] === null ? "–" : String(values[key])))));
    listBox.replaceChildren(el("table", {id: "recording-list"}, el("thead", {}, head), el("tbody", {}, ...body)));
  }

  // ------------------------------------------------------------ data for the view
  function traceData(rec, t0, t1, width) {
    const segments = loadSegments(rec);
    // The highest-rate stored segment that covers the whole view (the whole recording always does).
    let seg = segments[0];
    for (const s of segments) {
      if (s.rate > seg.rate && s.start <= Math.max(t0, 0) && s.start + s.n / s.rate >= Math.min(t1, rec.meta.duration)) seg = s;
    }
    const m = montageRows(rec, seg, state.montage);
    const i0 = Math.max(0, Math.floor((t0 - seg.start) * seg.rate));
    const i1 = Math.min(seg.n, Math.ceil((t1 - seg.start) * seg.rate) + 1);
    const n = Math.max(0, i1 - i0);
    // Every sample up to three per pixel column; beyond, min/max bins of 2^k samples, between one
    // and two bins (two to four points) per pixel column.
    const k = n > 3 * width ? Math.floor(Math.log2(n / width)) : 0;
    const rows = m.rows, nrows = rows.length, scale = rec.meta.step / state.gain;
    const xs = [], ys = rows.map(() => []);
    if (k === 0) {
      for (let i = i0; i < i1; i++) xs.push(seg.start + i / seg.rate);
      for (let r = 0; r < nrows; r++) {
        const row = rows[r], out = ys[r];
        for (let i = i0; i < i1; i++) out.push(-r + row[i] * scale);
      }
    } else {
      const lv = level(m, k), bin = 2 ** k, b0 = Math.floor(i0 / bin), b1 = Math.ceil(i1 / bin);
      for (let b = b0; b < b1; b++) {
        const t = seg.start + (b * bin) / seg.rate;
        xs.push(t, t + bin / (2 * seg.rate));
      }
      for (let r = 0; r < nrows; r++) {
        const {min, max} = lv[r], out = ys[r];
        for (let b = b0; b < b1; b++) out.push(-r + min[b] * scale, -r + max[b] * scale);
      }
    }
    state.decimation = {rate: seg.rate, segmentStart: seg.start, samplesInView: n,
                        binSamples: 2 ** k, mode: k === 0 ? "samples" : "min/max envelope",
                        points: xs.length, width};
    return [xs, ...ys];
  }
  function probabilityData(rec, t0, t1, width) {
    const rate = rec.meta.frameRate, probs = rec.probs, smoothed = analyse(rec, state.point).smoothed;
    const f0 = Math.max(0, Math.floor(t0 * rate) - 1), f1 = Math.min(probs.length, Math.ceil(t1 * rate) + 1);
    const step = Math.max(1, Math.floor((f1 - f0) / (2 * width)));
    const xs = [], raw = [], sm = [];
    for (let f = f0; f < f1; f += step) {
      let lo = Infinity, hi = -Infinity, slo = Infinity, shi = -Infinity;
      for (let g = f; g < Math.min(f + step, f1); g++) {
        lo = Math.min(lo, probs[g]); hi = Math.max(hi, probs[g]);
        slo = Math.min(slo, smoothed[g]); shi = Math.max(shi, smoothed[g]);
      }
      // A frame covers [f / rate, (f + 1) / rate): drawn at its centre.
      const t = (f + 0.5) / rate;
      if (step === 1) { xs.push(t); raw.push(hi); sm.push(shi); }
      else { xs.push(t, t + step / (2 * rate)); raw.push(lo, hi); sm.push(slo, shi); }
    }
    return [xs, raw, sm];
  }

  // ------------------------------------------------------------ charts
  let traces = null, probability = null;
  function drawEvents(u, which) {
    const rec = state.rec, a = analyse(rec, state.point), ctx = u.ctx, {left, top, width, height} = u.bbox;
    ctx.save();
    ctx.beginPath(); ctx.rect(left, top, width, height); ctx.clip();
    const x = (t) => u.valToPos(t, "x", true);
    (rec.meta.reference || []).forEach((r, i) => {
      ctx.fillStyle = COLORS.reference;
      ctx.fillRect(x(r[0]), top, x(r[1]) - x(r[0]), height);
      if (!a.hit[i]) {  // a miss: an orange bar along the bottom
        ctx.fillStyle = COLORS.miss;
        ctx.fillRect(x(r[0]), top + height - 6, x(r[1]) - x(r[0]), 6);
      }
    });
    a.events.forEach((e, i) => {
      ctx.fillStyle = a.falseAlarm[i] ? COLORS.falseAlarm : COLORS.hit;
      ctx.fillRect(x(e[0]), top, Math.max(1, x(e[1]) - x(e[0])), which === "traces" ? 6 : 8);
    });
    if (which === "probability") {
      const point = META.points[state.point];
      const line = (value, dash, color) => {
        const y = u.valToPos(value, "y", true);
        ctx.setLineDash(dash); ctx.strokeStyle = color; ctx.lineWidth = 1.5;
        ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + width, y); ctx.stroke();
      };
      line(point.threshold, [6, 4], "#c0392b");
      if (point.hysteresis_low !== null) line(point.hysteresis_low, [2, 3], "#8e44ad");
    }
    ctx.restore();
  }
  function xAxis() {
    return {values: (u, splits) => splits.map(clock), grid: {stroke: "#e4e4e4"}};
  }
  function buildCharts() {
    const rec = state.rec, labels = rowLabels(rec, state.montage), width = tracesBox.clientWidth || 1200;
    if (traces) traces.destroy();
    if (probability) probability.destroy();
    const rowHeight = state.montage === "bipolar" ? 30 : 28;
    traces = new uPlot({
      width, height: labels.length * rowHeight + 40, legend: {show: false},
      cursor: {drag: {x: true, y: false, setScale: false}, points: {show: false}},
      scales: {x: {time: false, auto: false}, y: {auto: false, range: [-labels.length + 0.4, 0.8]}},
      axes: [xAxis(), {size: 70, splits: () => labels.map((_, i) => -i), values: () => labels,
                       grid: {stroke: "#f0f0f0"}}],
      series: [{}, ...labels.map((name) => ({label: name, stroke: "#1b2631", width: 0.8, points: {show: false}}))],
      hooks: {draw: [(u) => drawEvents(u, "traces")],
              setSelect: [(u) => {
                if (u.select.width > 4) {
                  setView(u.posToVal(u.select.left, "x"), u.posToVal(u.select.left + u.select.width, "x"));
                }
                u.setSelect({left: 0, top: 0, width: 0, height: 0}, false);
              }]},
    }, [[], ...labels.map(() => [])], tracesBox);
    probability = new uPlot({
      width, height: 150, legend: {show: false}, cursor: {drag: {x: false, y: false}, points: {show: false}},
      scales: {x: {time: false, auto: false}, y: {auto: false, range: [0, 1.05]}},
      axes: [xAxis(), {size: 70, splits: () => [0, 0.25, 0.5, 0.75, 1], values: (u, splits) => splits.map((v) => "p " + v)}],
      series: [{}, {label: "probability", stroke: "rgba(90, 120, 160, 0.55)", width: 1, points: {show: false}},
               {label: "smoothed", stroke: "#1f4e8c", width: 1.6, points: {show: false}}],
      hooks: {draw: [(u) => drawEvents(u, "probability")]},
    }, [[], [], []], probBox);
  }
  function redraw() {
    const rec = state.rec;
    if (!rec) return;
    const width = traces.bbox.width / devicePixelRatio || 1000;
    traces.batch(() => {
      traces.setData(traceData(rec, state.t0, state.t1, Math.round(width)), false);
      traces.setScale("x", {min: state.t0, max: state.t1});
    });
    probability.batch(() => {
      probability.setData(probabilityData(rec, state.t0, state.t1, Math.round(width)), false);
      probability.setScale("x", {min: state.t0, max: state.t1});
    });
    const d = state.decimation, c = analyse(rec, state.point).counts;
    status.textContent = `${clock(state.t0)} – ${clock(state.t1)} (${(state.t1 - state.t0).toFixed(1)} s) · ` +
      `${d.mode}${d.binSamples > 1 ? " of " + d.binSamples + " samples" : ""} at ${d.rate} Hz · ` +
      `${state.montage} · ${c.events} predicted` +
      (rec.meta.reference ? `, ${c.hits} hit / ${c.misses} missed, ${c.false_alarms} false alarm(s)` : "");
  }

  // ------------------------------------------------------------ navigation
  function setView(t0, t1) {
    const rec = state.rec, len = Math.max(t1 - t0, 1 / rec.meta.segments[0].rate * 8);
    const half = len / 2, dur = rec.meta.duration;
    let centre = (t0 + t1) / 2;
    centre = Math.min(Math.max(centre, 0), dur);  // the centre stays inside the recording
    state.t0 = centre - half; state.t1 = centre + half;
    redraw();
  }
  function setLength(len) {
    const centre = (state.t0 + state.t1) / 2;
    setView(centre - len / 2, centre + len / 2);
  }
  function centreOn(event) {
    const len = state.t1 - state.t0, centre = (event[0] + event[1]) / 2;
    setView(centre - len / 2, centre + len / 2);
  }
  function allEvents(rec) {
    const a = analyse(rec, state.point);
    const list = (rec.meta.reference || []).map((r, i) => ({span: r, kind: a.hit[i] ? "hit reference" : "miss"}));
    a.events.forEach((e, i) => list.push({span: e, kind: a.falseAlarm[i] ? "false alarm" : "predicted hit"}));
    return list.sort((x, y) => x.span[0] - y.span[0] || x.span[1] - y.span[1]);
  }
  function jump(which) {
    const rec = state.rec, centre = (state.t0 + state.t1) / 2, eps = 1e-6;
    const mid = (e) => (e.span[0] + e.span[1]) / 2;
    let candidates = allEvents(rec);
    if (which === "false-alarm") candidates = candidates.filter((e) => e.kind === "false alarm");
    if (which === "miss") candidates = candidates.filter((e) => e.kind === "miss");
    if (!candidates.length) { status.textContent = `no ${which === "miss" ? "miss" : which === "false-alarm" ? "false alarm" : "event"} in this recording`; return null; }
    // By centre, not by start: a long event that starts first can have its centre after shorter ones.
    candidates = [...candidates].sort((x, y) => mid(x) - mid(y));
    let target;
    if (which === "previous") target = [...candidates].reverse().find((e) => mid(e) < centre - eps) || candidates[candidates.length - 1];
    else target = candidates.find((e) => mid(e) > centre + eps) || candidates[0];
    centreOn(target.span);
    return target;
  }
  function setPoint(key) {
    state.point = key;
    pointSelect.value = key;
    renderList();
    if (state.rec) redraw();
  }
  function toggleMontage() {
    state.montage = state.montage === "bipolar" ? "referential" : "bipolar";
    montageButton.textContent = state.montage === "bipolar" ? "referential view (b)" : "bipolar view (b)";
    buildCharts();
    redraw();
  }
  function openRecording(rec) {
    state.rec = rec;
    const len = Math.min(30, rec.meta.duration);
    document.getElementById("rec-title").textContent = rec.meta.id;
    buildCharts();
    state.t0 = 0; state.t1 = len;
    setView(0, len);
    pageSelect.value = String(PAGE_LENGTHS.find((s) => s >= len) || PAGE_LENGTHS[0]);
    renderList();
    renderInfo(rec);
  }
  function renderInfo(rec) {
    const m = rec.meta.montage, p = META.provenance;
    const read = m.read.map((e) => `${e.electrode} ← ${e.label} (${e.rate_hz} Hz)`).join(", ");
    infoBox.replaceChildren(
      el("h2", {}, "Montage"),
      el("p", {id: "montage-read"}, `read (${m.read.length}): ${read}`),
      el("p", {}, `reconstructed: ${m.reconstructed.length ? m.reconstructed.join(", ") : "none"} · missing: ` +
        `${m.missing.length ? m.missing.join(", ") : "none"} · other signals in the EDF (not used): ` +
        `${m.other_signals.length ? m.other_signals.join(", ") : "none"}`),
      el("p", {}, `EDF: ${rec.meta.edf} · traces: the network's input (common average reference, band-pass, ` +
        `normalised to interquartile ranges), stored at ` +
        rec.meta.segments.map((s) => `${s.rate} Hz from ${clock(s.start)} for ${clock(s.n / s.rate)}`).join("; ")),
      el("h2", {}, "Checkpoint"),
      el("p", {id: "provenance"}, `${p.checkpoint}: step ${p.step}, epoch ${p.epoch}, params hash ` +
        `${p.params_hash || "(none)"}; operating points ${p.operating_points}`),
      el("pre", {}, JSON.stringify(p.model_config, null, 1)),
      el("h2", {}, "Operating point " + state.point + " FA/24h"),
      el("pre", {}, JSON.stringify(META.points[state.point], null, 1)));
  }
  document.addEventListener("keydown", (e) => {
    if (!state.rec || e.target.tagName === "SELECT") return;
    const len = state.t1 - state.t0, i = PAGE_LENGTHS.findIndex((s) => s >= len - 1e-9);
    const actions = {
      n: () => jump("next"), p: () => jump("previous"), f: () => jump("false-alarm"), m: () => jump("miss"),
      b: () => toggleMontage(),
      ArrowRight: () => setView(state.t0 + (e.shiftKey ? len : len / 2), state.t1 + (e.shiftKey ? len : len / 2)),
      ArrowLeft: () => setView(state.t0 - (e.shiftKey ? len : len / 2), state.t1 - (e.shiftKey ? len : len / 2)),
      "+": () => setLength(PAGE_LENGTHS[Math.max(0, (i < 0 ? PAGE_LENGTHS.length : i) - 1)]),
      "=": () => setLength(PAGE_LENGTHS[Math.max(0, (i < 0 ? PAGE_LENGTHS.length : i) - 1)]),
      "-": () => setLength(PAGE_LENGTHS[Math.min(PAGE_LENGTHS.length - 1, i < 0 ? PAGE_LENGTHS.length - 1 : i + 1)]),
      ArrowUp: () => { state.gain = GAINS[Math.max(0, GAINS.indexOf(state.gain) - 1)]; gainSelect.value = state.gain; redraw(); },
      ArrowDown: () => { state.gain = GAINS[Math.min(GAINS.length - 1, GAINS.indexOf(state.gain) + 1)]; gainSelect.value = state.gain; redraw(); },
    };
    if (actions[e.key]) { e.preventDefault(); actions[e.key](); }
  });
  window.addEventListener("resize", () => { if (state.rec) { buildCharts(); redraw(); } });

  // What the tests and the screenshot script read (and drive).
  window.szReview = {
    state, meta: META, openRecording: (id) => openRecording(recordings.find((r) => r.meta.id === id)),
    predicted: (id, key) => analyse(recordings.find((r) => r.meta.id === id), key).events,
    counts: (id, key) => analyse(recordings.find((r) => r.meta.id === id), key).counts,
    events: () => allEvents(state.rec), setView, setPoint, jump, ready: false,
    traceRows: () => ({labels: rowLabels(state.rec, state.montage), rows: traces.data.slice(1).map((r) => Array.from(r))}),
  };
  gainSelect.value = String(state.gain);
  pointSelect.value = state.point;
  renderList();
  if (recordings.length) openRecording(recordings[0]);
  window.szReview.ready = true;
})();

/* Skyline webapp: a small explorable SVG time-series chart (Sky.chart), drawn with DOM calls
 * only (no inline script, no CDN: the page's strict CSP holds).
 *
 * Sky.chart(el, points, opts)
 *   points: [[epochSeconds, value|null], ...] ascending
 *   opts.marker: {ts, value}   the anomalous point: red dot, dashed horizontal line and a
 *                              vertical line at its time
 *   opts.band:   {from, until} shaded interval (the anomaly window)
 *   opts.note:   text drawn in the corner (e.g. "data from Redis")
 *   opts.label:  the series name (title; units are guessed from it unless opts.unit is set)
 *   opts.unit:   unit suffix for values ('B', 's', 'ms', '%', ...); '' for none
 *   opts.scores: {points: [[ts, score], ...], threshold}  the stream detector's scores: a
 *                translucent band where score >= threshold and a faint score strip under the plot
 *   opts.ranges: show the range picker (1 h / 6 h / 24 h / 7 d, the ones the data covers, and
 *                "all"); the range ends at the anomaly (plus a fifth of the range) or the last point
 *   opts.remote: {ranges: [secs...], current: secs, pick: function (secs)}  a range picker whose
 *                choice is fetched by the page (Panorama asks Graphite again)
 * The chart: drag across the plot to zoom into that interval, double-click (or "reset zoom")
 * to zoom out; "log" switches to a logarithmic value axis (offered when a spike flattens the
 * rest). Time labels are in the page's display zone (Sky.zone()), always with the date where
 * the day changes, and the zone's UTC offset is written above the plot. Long series are reduced
 * to the minimum and maximum of each pixel column, so a spike is never lost. */
(function () {
  'use strict';

  var Sky = window.Sky = window.Sky || {};
  var NS = 'http://www.w3.org/2000/svg';
  var TIME_STEPS = [10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
    86400, 172800, 604800, 1209600, 2592000];
  var RANGES = [[3600, '1 h'], [21600, '6 h'], [86400, '24 h'], [604800, '7 d']];

  function node(name, attrs, parent) {
    var n = document.createElementNS(NS, name);
    Object.keys(attrs || {}).forEach(function (k) { n.setAttribute(k, attrs[k]); });
    if (parent) { parent.appendChild(n); }
    return n;
  }

  function html(tag, cls, text, parent) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    if (parent) { parent.appendChild(e); }
    return e;
  }

  /* The unit of a metric when its name says it (Prometheus and common Graphite suffixes). */
  Sky.unitOf = function (name) {
    var n = String(name || '').toLowerCase().replace(/\{.*$/, '');
    if (/(^|[._])(bytes?)(_total)?$/.test(n)) { return 'B'; }
    if (/(^|[._])(milliseconds|ms|millis)(_total)?$/.test(n)) { return 'ms'; }
    if (/(^|[._])(microseconds|us)(_total)?$/.test(n)) { return 'µs'; }
    if (/(^|[._])(seconds|secs)(_total)?$/.test(n)) { return 's'; }
    if (/(^|[._])(percent|pct|ratio_percent)$/.test(n)) { return '%'; }
    return '';
  };

  /* "UTC+01:00" for the display zone at `ts`. */
  Sky.utcOffset = function (ts) {
    var off = Sky.offset(ts);
    var sign = off < 0 ? '-' : '+';
    var a = Math.abs(off);
    var h = Math.floor(a / 3600);
    var mi = Math.floor(a / 60) % 60;
    return 'UTC' + sign + (h < 10 ? '0' : '') + h + ':' + (mi < 10 ? '0' : '') + mi;
  };

  function niceStep(range, count) {
    if (!(range > 0)) { return 1; }
    var raw = range / count;
    var mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var norm = raw / mag;
    var step = norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10;
    return step * mag;
  }

  function linearTicks(min, max, count) {
    var step = niceStep(max - min, count);
    var ticks = [];
    var start = Math.floor(min / step) * step;
    for (var v = start; v <= max + step * 0.5 && ticks.length < 14; v += step) {
      ticks.push(+v.toPrecision(12));
    }
    return ticks;
  }

  /* A scale: linear; log10 when every value is positive; else a symmetric log
   * (log10(1 + |v|), signed) so zeros and negatives keep a place. */
  function scale(log, positive) {
    if (!log) { return { f: function (v) { return v; } }; }
    if (positive) { return { f: function (v) { return Math.log10(v); } }; }
    return { f: function (v) { return v < 0 ? -Math.log10(1 - v) : Math.log10(1 + v); } };
  }

  /* 1-2-5 ticks per decade between min and max (0 and negatives too on a symmetric log),
   * thinned to the powers of ten when there are too many. */
  function logTicks(min, max, positive) {
    var out = [];
    var lo = positive ? Math.floor(Math.log10(min)) : 0;
    var hi = Math.ceil(Math.log10(Math.max(Math.abs(min), Math.abs(max), 1)));
    if (!positive && min <= 0 && max >= 0) { out.push(0); }
    for (var e = lo; e <= hi; e++) {
      [1, 2, 5].forEach(function (k) {
        var v = +(k * Math.pow(10, e)).toPrecision(3);
        if (v >= min && v <= max) { out.push(v); }
        if (!positive && -v >= min && -v <= max) { out.push(-v); }
      });
    }
    out.sort(function (a, b) { return a - b; });
    if (out.length > 8) {
      out = out.filter(function (v) {
        return v === 0 || Math.abs(Math.log10(Math.abs(v)) - Math.round(Math.log10(Math.abs(v)))) < 1e-9;
      });
    }
    if (!out.length) { out = [min, max]; }
    return out;
  }

  function xTicks(x0, x1, maxTicks) {
    var range = x1 - x0;
    var step = TIME_STEPS[TIME_STEPS.length - 1];
    for (var i = 0; i < TIME_STEPS.length; i++) {
      if (range / TIME_STEPS[i] <= maxTicks) { step = TIME_STEPS[i]; break; }
    }
    var off = Sky.offset(x0);
    var ticks = [];
    var first = Math.ceil((x0 + off) / step) * step - off;
    for (var t = first; t <= x1 && ticks.length < 60; t += step) { ticks.push(t); }
    return { ticks: ticks, step: step };
  }

  /* Two lines per tick: the time, and under it the full date (ISO order) at the first tick and
   * wherever the day changes, so no label can be read as another day; day steps show the date. */
  function tickLabels(ticks, step) {
    var last = null;
    return ticks.map(function (ts) {
      var day = Sky.fmtTime(ts, 'date');
      if (step >= 86400) { return [day, '']; }
      var top = step < 60 ? Sky.fmtTime(ts, 'seconds') : Sky.fmtTime(ts, 'time');
      var out = [top, day !== last ? day : ''];
      last = day;
      return out;
    });
  }

  /* Keeps the min and max of each pixel column (in time order). */
  function reduce(data, x0, x1, columns) {
    if (data.length <= columns * 2) { return data; }
    var out = [];
    var span = (x1 - x0) || 1;
    var col = -1;
    var lo = null;
    var hi = null;
    function flush() {
      if (lo === null) { return; }
      if (lo === hi) { out.push(lo); } else if (lo[0] <= hi[0]) { out.push(lo, hi); } else { out.push(hi, lo); }
    }
    for (var i = 0; i < data.length; i++) {
      var p = data[i];
      if (p[1] === null) { flush(); lo = hi = null; out.push(p); continue; }
      var c = Math.floor((p[0] - x0) / span * columns);
      if (c !== col) { flush(); col = c; lo = hi = p; continue; }
      if (p[1] < lo[1]) { lo = p; }
      if (p[1] > hi[1]) { hi = p; }
    }
    flush();
    return out;
  }

  function nearest(data, ts) {
    var lo = 0;
    var hi = data.length - 1;
    while (hi - lo > 1) {
      var mid = (lo + hi) >> 1;
      if (data[mid][0] < ts) { lo = mid; } else { hi = mid; }
    }
    return Math.abs(data[lo][0] - ts) <= Math.abs(data[hi][0] - ts) ? data[lo] : data[hi];
  }

  /* True when one spike squeezes the bulk of the values into a sliver of the plot. */
  function spiky(values) {
    if (values.length < 10) { return false; }
    var s = values.slice().sort(function (a, b) { return a - b; });
    var p10 = s[Math.floor(s.length * 0.1)];
    var p90 = s[Math.floor(s.length * 0.9)];
    var spread = s[s.length - 1] - s[0];
    return spread > 0 && (p90 - p10) * 8 < spread;
  }

  function withUnit(text, unit) {
    return unit ? text + (unit === '%' ? '' : ' ') + unit : text;
  }

  /* The window a range picks: ending a fifth of the range after the anomaly, or at the data's
   * end. */
  function rangeWindow(state, secs) {
    var data = state.points;
    var end = data.length ? data[data.length - 1][0] : 0;
    var mk = state.opts.marker;
    var x1 = end;
    if (mk && isFinite(mk.ts)) { x1 = Math.min(Math.max(end, mk.ts), mk.ts + secs * 0.2); }
    return { x0: x1 - secs, x1: x1 };
  }

  function toolbar(el, state, span) {
    var opts = state.opts;
    var bar = html('div', 'chart-tools');
    var remote = opts.remote;
    if (opts.ranges || remote) {
      var group = html('span', 'chart-ranges', undefined, bar);
      group.setAttribute('role', 'group');
      group.setAttribute('aria-label', 'time range');
      var choices = remote ? RANGES.filter(function (r) { return remote.ranges.indexOf(r[0]) >= 0; })
        : RANGES.filter(function (r) { return r[0] < span * 1.05; });
      choices.forEach(function (r) {
        var b = html('button', 'chart-btn range', r[1], group);
        b.type = 'button';
        b.setAttribute('data-range', String(r[0]));
        var active = remote ? remote.current === r[0] : (state.range === r[0] && !state.zoom);
        b.setAttribute('aria-pressed', active ? 'true' : 'false');
        b.addEventListener('click', function () {
          state.zoom = null;
          if (remote) { remote.current = r[0]; remote.pick(r[0]); return; }
          state.range = r[0];
          draw(el);
        });
      });
      if (!remote) {
        var all = html('button', 'chart-btn range', 'all', group);
        all.type = 'button';
        all.setAttribute('data-range', 'all');
        all.setAttribute('aria-pressed', state.range === null && !state.zoom ? 'true' : 'false');
        all.addEventListener('click', function () { state.range = null; state.zoom = null; draw(el); });
      }
    }
    if (state.offerLog || state.log) {
      var lg = html('button', 'chart-btn log-toggle', 'log', bar);
      lg.type = 'button';
      lg.title = 'logarithmic value axis (a spike flattens the rest)';
      lg.setAttribute('aria-pressed', state.log ? 'true' : 'false');
      lg.addEventListener('click', function () { state.log = !state.log; draw(el); });
    }
    if (state.zoom) {
      var rz = html('button', 'chart-btn reset-zoom', 'reset zoom', bar);
      rz.type = 'button';
      rz.addEventListener('click', function () { state.zoom = null; draw(el); });
    }
    html('span', 'chart-hint', state.zoom ? 'zoomed: double-click to zoom out' : 'drag to zoom', bar);
    var zone = html('span', 'zone', Sky.utcOffset(state.x1 || Date.now() / 1000), bar);
    zone.title = 'times in ' + Sky.zone();
    return bar;
  }

  function draw(el) {
    var state = el.skyChart;
    var opts = state.opts;
    var all = (state.points || []).filter(function (p) {
      return p && isFinite(p[0]) && (p[1] === null || isFinite(p[1]));
    });
    state.points = all;
    var allValued = all.filter(function (p) { return p[1] !== null; });
    if (!allValued.length) {
      Sky.chartMessage(el, opts.empty || 'no datapoints in this window');
      return;
    }
    var mk = opts.marker;
    var span = all[all.length - 1][0] - all[0][0];

    // The window: a zoom, else the picked range, else everything (with the marker and band).
    var x0;
    var x1;
    if (state.zoom) {
      x0 = state.zoom.x0; x1 = state.zoom.x1;
    } else if (state.range && !opts.remote) {
      var w = rangeWindow(state, state.range);
      x0 = w.x0; x1 = w.x1;
    } else {
      x0 = all[0][0];
      x1 = all[all.length - 1][0];
      if (opts.band) { x0 = Math.min(x0, opts.band.from); x1 = Math.max(x1, opts.band.until); }
      if (mk && isFinite(mk.ts)) { x0 = Math.min(x0, mk.ts); x1 = Math.max(x1, mk.ts); }
    }
    if (x1 <= x0) { x0 -= 30; x1 += 30; }
    var data = all.filter(function (p) { return p[0] >= x0 && p[0] <= x1; });
    var valued = data.filter(function (p) { return p[1] !== null; });
    var values = valued.map(function (p) { return p[1]; });
    state.offerLog = spiky(values);

    state.x1 = x1;
    var unit = opts.unit !== undefined ? opts.unit : Sky.unitOf(opts.label);
    var bar = toolbar(el, state, span);
    var box = html('div', 'chart-plot');
    el.replaceChildren(bar, box);
    var W = Math.max(240, Math.floor(el.clientWidth || 600));
    var H = Math.max(120, Math.floor((el.clientHeight || 214) - (bar.offsetHeight || 24)));
    var scores = opts.scores && opts.scores.points && opts.scores.points.length ? opts.scores : null;
    var strip = scores ? 12 : 0;
    var m = { l: 56, r: 14, t: 10, b: 36 + strip };
    var iw = W - m.l - m.r;
    var ih = H - m.t - m.b;

    var ymin = Infinity;
    var ymax = -Infinity;
    values.forEach(function (v) { if (v < ymin) { ymin = v; } if (v > ymax) { ymax = v; } });
    if (mk && isFinite(mk.value) && mk.ts >= x0 && mk.ts <= x1) { ymin = Math.min(ymin, mk.value); ymax = Math.max(ymax, mk.value); }
    if (!values.length) { ymin = 0; ymax = 1; }
    var positive = ymin > 0;
    if (ymax === ymin) {
      ymax += Math.abs(ymax) * 0.1 || 1;
      ymin = positive && state.log ? ymin * 0.9 : ymin - (Math.abs(ymin) * 0.1 || 1);
    }
    var sc = scale(state.log, positive);
    var yt;
    if (state.log) {
      yt = logTicks(ymin, ymax, positive);
    } else {
      yt = linearTicks(ymin, ymax, Math.max(3, Math.floor(ih / 34)));
      ymin = Math.min(ymin, yt[0]);
      ymax = Math.max(ymax, yt[yt.length - 1]);
    }
    var u0 = sc.f(ymin);
    var u1 = sc.f(ymax);
    if (u1 <= u0) { u1 = u0 + 1; }
    function X(t) { return m.l + (t - x0) / (x1 - x0) * iw; }
    function Y(v) { return m.t + ih - (sc.f(v) - u0) / (u1 - u0) * ih; }

    var svg = node('svg', { viewBox: '0 0 ' + W + ' ' + H, width: W, height: H, role: 'img' });
    var title = node('title', {}, svg);
    title.textContent = (opts.label || 'series') + ', ' + valued.length + ' points from ' +
      Sky.fmtTime(x0, 'datetime') + ' to ' + Sky.fmtTime(x1, 'datetime') + ' ' + Sky.utcOffset(x1);

    // Grid and axes.
    yt.forEach(function (v) {
      if (v < ymin || v > ymax) { return; }
      node('line', { 'class': 'grid-line', x1: m.l, x2: W - m.r, y1: Y(v), y2: Y(v) }, svg);
      var t = node('text', { 'class': 'axis-text', x: m.l - 6, y: Y(v) + 3.5, 'text-anchor': 'end' }, svg);
      t.textContent = withUnit(Sky.fmtNum(v), unit);
    });
    var xt = xTicks(x0, x1, Math.max(3, Math.floor(iw / 56)));
    var labels = tickLabels(xt.ticks, xt.step);
    xt.ticks.forEach(function (ts, i) {
      node('line', { 'class': 'grid-line', x1: X(ts), x2: X(ts), y1: m.t, y2: m.t + ih }, svg);
      var t = node('text', { 'class': 'axis-text x-tick', x: X(ts), y: m.t + ih + strip + 14, 'text-anchor': 'middle' }, svg);
      t.textContent = labels[i][0];
      if (labels[i][1]) {
        var d = node('text', { 'class': 'axis-text x-date', x: X(ts), y: m.t + ih + strip + 27, 'text-anchor': 'middle' }, svg);
        d.textContent = labels[i][1];
      }
    });

    if (opts.band) {
      var bx = Math.max(m.l, X(opts.band.from));
      var bw = Math.min(W - m.r, X(opts.band.until)) - bx;
      if (bw > 0) { node('rect', { 'class': 'anomaly-band', x: bx, y: m.t, width: Math.max(2, bw), height: ih }, svg); }
    }

    // The stream detector's scores: bands where a score reaches the threshold, and a strip.
    if (scores) {
      var thr = scores.threshold || 1;
      var sp = scores.points.filter(function (p) { return p[0] >= x0 && p[0] <= x1 && isFinite(p[1]); });
      var runStart = null;
      var prev = null;
      var cell = Math.max(1, iw / Math.max(1, sp.length));
      var closeRun = function (endTs) {
        if (runStart === null) { return; }
        var rx = X(runStart) - cell / 2;
        node('rect', { 'class': 'score-band', x: Math.max(m.l, rx), y: m.t, width: Math.max(2, X(endTs) - rx + cell / 2), height: ih }, svg);
        runStart = null;
      };
      sp.forEach(function (p) {
        if (p[1] >= thr) { if (runStart === null) { runStart = p[0]; } } else { closeRun(prev); }
        prev = p[0];
        var level = Math.min(1, Math.max(0, p[1] / thr));
        if (level > 0.05) {
          node('rect', {
            'class': 'score-cell' + (p[1] >= thr ? ' over' : ''), x: X(p[0]) - cell / 2, y: m.t + ih + 3,
            width: Math.max(1, cell), height: strip - 4, 'fill-opacity': (0.15 + 0.85 * level).toFixed(2)
          }, svg);
        }
      });
      closeRun(prev);
      var sl = node('text', { 'class': 'axis-text', x: m.l - 6, y: m.t + ih + strip - 1, 'text-anchor': 'end' }, svg);
      sl.textContent = 'score';
    }

    // The series: a line and a light area, broken at nulls.
    var shown = reduce(data, x0, x1, iw);
    var line = '';
    var area = '';
    var seg = [];
    var floor = m.t + ih;
    function closeSeg() {
      if (!seg.length) { return; }
      var d = seg.map(function (p, i) { return (i ? 'L' : 'M') + X(p[0]).toFixed(1) + ' ' + Y(p[1]).toFixed(1); }).join('');
      line += d;
      area += d + 'L' + X(seg[seg.length - 1][0]).toFixed(1) + ' ' + floor + 'L' + X(seg[0][0]).toFixed(1) + ' ' + floor + 'Z';
      seg = [];
    }
    shown.forEach(function (p) { if (p[1] === null) { closeSeg(); } else { seg.push(p); } });
    closeSeg();
    var clipId = 'clip-' + (++Sky.chartSeq);
    var defs = node('defs', {}, svg);
    var clip = node('clipPath', { id: clipId }, defs);
    node('rect', { x: m.l, y: m.t - 1, width: iw, height: ih + 2 }, clip);
    var plot = node('g', { 'clip-path': 'url(#' + clipId + ')' }, svg);
    node('path', { 'class': 'area', d: area }, plot);
    node('path', { 'class': 'series', d: line }, plot);

    if (mk && isFinite(mk.ts) && mk.ts >= x0 && mk.ts <= x1) {
      var vl = node('line', { 'class': 'anomaly-vline', x1: X(mk.ts), x2: X(mk.ts), y1: m.t, y2: m.t + ih }, svg);
      var vt = node('title', {}, vl);
      vt.textContent = 'anomaly at ' + Sky.fmtTime(mk.ts, 'datetime') + ' ' + Sky.utcOffset(mk.ts);
    }
    if (mk && isFinite(mk.value) && mk.value >= ymin && mk.value <= ymax) {
      node('line', { 'class': 'anomaly-line', x1: m.l, x2: W - m.r, y1: Y(mk.value), y2: Y(mk.value) }, svg);
      if (isFinite(mk.ts) && mk.ts >= x0 && mk.ts <= x1) {
        var dot = node('circle', { 'class': 'anomaly-dot', cx: X(mk.ts), cy: Y(mk.value), r: 4.5 }, svg);
        var dt = node('title', {}, dot);
        dt.textContent = 'anomalous: ' + withUnit(Sky.fmtValue(mk.value), unit) + ' at ' + Sky.fmtTime(mk.ts, 'datetime') + ' ' + Sky.utcOffset(mk.ts);
      }
    }
    if (opts.note) {
      var n = node('text', { 'class': 'note', x: W - m.r, y: m.t + 11, 'text-anchor': 'end' }, svg);
      n.textContent = opts.note;
    }

    // Hover: a cursor and the nearest point's time and value. Drag: zoom.
    var cursor = node('line', { 'class': 'cursor', y1: m.t, y2: m.t + ih, visibility: 'hidden' }, svg);
    var sel = node('rect', { 'class': 'zoom-sel', y: m.t, height: ih, width: 0, visibility: 'hidden' }, svg);
    var tip = node('g', { visibility: 'hidden' }, svg);
    var tipBg = node('rect', { 'class': 'tip-bg', rx: 4, height: 18 }, tip);
    var tipText = node('text', { 'class': 'tip-text', y: 13 }, tip);
    var hit = node('rect', { 'class': 'hit', x: m.l, y: m.t, width: iw, height: ih, fill: 'transparent' }, svg);
    var dragFrom = null;
    function px(ev) {
      var b = svg.getBoundingClientRect();
      return Math.min(W - m.r, Math.max(m.l, (ev.clientX - b.left) * (W / (b.width || W))));
    }
    function tsAt(x) { return x0 + (x - m.l) / iw * (x1 - x0); }
    hit.addEventListener('mousedown', function (ev) {
      if (ev.button !== 0) { return; }
      dragFrom = px(ev);
      ev.preventDefault();
    });
    hit.addEventListener('mousemove', function (ev) {
      var x = px(ev);
      if (dragFrom !== null) {
        sel.setAttribute('x', Math.min(dragFrom, x));
        sel.setAttribute('width', Math.abs(x - dragFrom));
        sel.setAttribute('visibility', 'visible');
      }
      if (!valued.length) { return; }
      var p = nearest(valued, tsAt(x));
      var cx = X(p[0]);
      cursor.setAttribute('x1', cx);
      cursor.setAttribute('x2', cx);
      cursor.setAttribute('visibility', 'visible');
      tipText.textContent = Sky.fmtTime(p[0], 'datetime') + ' ' + Sky.utcOffset(p[0]) + '  ' + withUnit(Sky.fmtValue(p[1]), unit);
      var tw = tipText.getComputedTextLength() + 12;
      tipText.setAttribute('x', 6);
      tipBg.setAttribute('width', tw);
      var tx = Math.min(Math.max(m.l, cx - tw / 2), W - m.r - tw);
      tip.setAttribute('transform', 'translate(' + tx.toFixed(1) + ',' + m.t + ')');
      tip.setAttribute('visibility', 'visible');
    });
    function endDrag(ev) {
      if (dragFrom === null) { return; }
      var a = dragFrom;
      var b = px(ev);
      dragFrom = null;
      sel.setAttribute('visibility', 'hidden');
      if (Math.abs(b - a) < 5) { return; }
      var t0 = tsAt(Math.min(a, b));
      var t1 = tsAt(Math.max(a, b));
      if (t1 - t0 < 2) { return; }
      state.zoom = { x0: t0, x1: t1 };
      draw(el);
    }
    hit.addEventListener('mouseup', endDrag);
    hit.addEventListener('mouseleave', function (ev) {
      endDrag(ev);
      cursor.setAttribute('visibility', 'hidden');
      tip.setAttribute('visibility', 'hidden');
    });
    hit.addEventListener('dblclick', function () {
      if (state.zoom) { state.zoom = null; draw(el); }
    });
    box.appendChild(svg);
    el.setAttribute('data-x0', String(Math.round(x0)));
    el.setAttribute('data-x1', String(Math.round(x1)));
  }

  Sky.chartSeq = 0;

  /* The stream detector's scores as [[ts, score], ...] for Sky.chart, or null. */
  Sky.scoresOf = function (d) {
    var pts = (d && d.results) || [];
    if (!d || !d.scores || d.scores.length !== pts.length) { return null; }
    return {
      points: pts.map(function (p, i) { return [p[0], d.scores[i]]; }),
      threshold: d.threshold
    };
  };

  Sky.chart = function (el, points, opts) {
    opts = opts || {};
    var old = el.skyChart;
    el.skyChart = {
      points: points,
      opts: opts,
      range: opts.range || null,
      zoom: null,
      // The log toggle survives a refetch (Panorama's range picker).
      log: old ? old.log : false,
      offerLog: false
    };
    el.classList.add('explorable');
    draw(el);
  };

  var resizeTimer = null;
  window.addEventListener('resize', function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      document.querySelectorAll('.chart').forEach(function (el) {
        if (el.skyChart) { draw(el); }
      });
    }, 150);
  });
}());

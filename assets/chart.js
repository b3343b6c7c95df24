/* Skyline webapp: a small SVG time-series chart (Sky.chart), drawn with DOM calls only.
 *
 * Sky.chart(el, points, opts)
 *   points: [[epochSeconds, value|null], ...] ascending
 *   opts.marker: {ts, value}   the anomalous point: red dot + dashed horizontal line
 *   opts.band:   {from, until} shaded interval (the anomaly window)
 *   opts.note:   text drawn in the corner (e.g. "data from Redis")
 * Times are drawn in the page's display zone (Sky.zone()). Long series are reduced to the
 * minimum and maximum of each pixel column, so a spike is never lost. */
(function () {
  'use strict';

  var Sky = window.Sky = window.Sky || {};
  var NS = 'http://www.w3.org/2000/svg';
  var TIME_STEPS = [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
    86400, 172800, 604800, 1209600, 2592000];

  function node(name, attrs, parent) {
    var n = document.createElementNS(NS, name);
    Object.keys(attrs || {}).forEach(function (k) { n.setAttribute(k, attrs[k]); });
    if (parent) { parent.appendChild(n); }
    return n;
  }

  function niceStep(range, count) {
    if (!(range > 0)) { return 1; }
    var raw = range / count;
    var mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var norm = raw / mag;
    var step = norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10;
    return step * mag;
  }

  function yTicks(min, max) {
    var step = niceStep(max - min, 4);
    var ticks = [];
    var start = Math.floor(min / step) * step;
    for (var v = start; v <= max + step * 0.5 && ticks.length < 12; v += step) {
      ticks.push(+v.toPrecision(12));
    }
    return ticks;
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
    for (var t = first; t <= x1 && ticks.length < 40; t += step) { ticks.push(t); }
    return { ticks: ticks, step: step };
  }

  function tickLabel(ts, step, range) {
    if (step >= 86400) { return Sky.fmtTime(ts, 'day'); }
    var hm = Sky.fmtTime(ts, 'time');
    if (range > 86400 && hm === '00:00') { return Sky.fmtTime(ts, 'day'); }
    return hm;
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

  function draw(el, points, opts) {
    var W = Math.max(240, Math.floor(el.clientWidth || 600));
    var H = Math.max(120, Math.floor(el.clientHeight || 190));
    var m = { l: 52, r: 14, t: 10, b: 22 };
    var iw = W - m.l - m.r;
    var ih = H - m.t - m.b;
    var data = (points || []).filter(function (p) {
      return p && isFinite(p[0]) && (p[1] === null || isFinite(p[1]));
    });
    var valued = data.filter(function (p) { return p[1] !== null; });
    if (!valued.length) {
      Sky.chartMessage(el, opts.empty || 'no datapoints in this window');
      return;
    }
    var x0 = data[0][0];
    var x1 = data[data.length - 1][0];
    var mk = opts.marker;
    if (opts.band) { x0 = Math.min(x0, opts.band.from); x1 = Math.max(x1, opts.band.until); }
    if (mk && isFinite(mk.ts)) { x0 = Math.min(x0, mk.ts); x1 = Math.max(x1, mk.ts); }
    if (x1 <= x0) { x0 -= 30; x1 += 30; }
    var ymin = Infinity;
    var ymax = -Infinity;
    valued.forEach(function (p) { if (p[1] < ymin) { ymin = p[1]; } if (p[1] > ymax) { ymax = p[1]; } });
    if (mk && isFinite(mk.value)) { ymin = Math.min(ymin, mk.value); ymax = Math.max(ymax, mk.value); }
    if (ymax === ymin) { ymax += Math.abs(ymax) * 0.1 || 1; ymin -= Math.abs(ymin) * 0.1 || 1; }
    var yt = yTicks(ymin, ymax);
    ymin = Math.min(ymin, yt[0]);
    ymax = Math.max(ymax, yt[yt.length - 1]);
    function X(t) { return m.l + (t - x0) / (x1 - x0) * iw; }
    function Y(v) { return m.t + ih - (v - ymin) / (ymax - ymin) * ih; }

    var svg = node('svg', { viewBox: '0 0 ' + W + ' ' + H, width: W, height: H, role: 'img' });
    var title = node('title', {}, svg);
    title.textContent = (opts.label || 'series') + ', ' + valued.length + ' points';

    // Grid and axes.
    yt.forEach(function (v) {
      if (v < ymin || v > ymax) { return; }
      node('line', { 'class': 'grid-line', x1: m.l, x2: W - m.r, y1: Y(v), y2: Y(v) }, svg);
      var t = node('text', { 'class': 'axis-text', x: m.l - 6, y: Y(v) + 3.5, 'text-anchor': 'end' }, svg);
      t.textContent = Sky.fmtNum(v);
    });
    var xt = xTicks(x0, x1, Math.max(2, Math.floor(iw / 80)));
    xt.ticks.forEach(function (ts) {
      node('line', { 'class': 'grid-line', x1: X(ts), x2: X(ts), y1: m.t, y2: m.t + ih }, svg);
      var t = node('text', { 'class': 'axis-text', x: X(ts), y: H - 6, 'text-anchor': 'middle' }, svg);
      t.textContent = tickLabel(ts, xt.step, x1 - x0);
    });

    if (opts.band) {
      var bx = X(opts.band.from);
      node('rect', { 'class': 'anomaly-band', x: bx, y: m.t, width: Math.max(2, X(opts.band.until) - bx), height: ih }, svg);
    }

    // The series: a line and a light area, broken at nulls.
    var shown = reduce(data, x0, x1, iw);
    var line = '';
    var area = '';
    var seg = [];
    function closeSeg() {
      if (!seg.length) { return; }
      var d = seg.map(function (p, i) { return (i ? 'L' : 'M') + X(p[0]).toFixed(1) + ' ' + Y(p[1]).toFixed(1); }).join('');
      line += d;
      area += d + 'L' + X(seg[seg.length - 1][0]).toFixed(1) + ' ' + (m.t + ih) + 'L' + X(seg[0][0]).toFixed(1) + ' ' + (m.t + ih) + 'Z';
      seg = [];
    }
    shown.forEach(function (p) { if (p[1] === null) { closeSeg(); } else { seg.push(p); } });
    closeSeg();
    node('path', { 'class': 'area', d: area }, svg);
    node('path', { 'class': 'series', d: line }, svg);

    if (mk && isFinite(mk.value)) {
      node('line', { 'class': 'anomaly-line', x1: m.l, x2: W - m.r, y1: Y(mk.value), y2: Y(mk.value) }, svg);
      if (isFinite(mk.ts)) {
        var dot = node('circle', { 'class': 'anomaly-dot', cx: X(mk.ts), cy: Y(mk.value), r: 4.5 }, svg);
        var dt = node('title', {}, dot);
        dt.textContent = 'anomalous: ' + Sky.fmtValue(mk.value) + ' at ' + Sky.fmtTime(mk.ts, 'datetime');
      }
    }
    if (opts.note) {
      var n = node('text', { 'class': 'note', x: W - m.r, y: m.t + 11, 'text-anchor': 'end' }, svg);
      n.textContent = opts.note;
    }

    // Hover: a cursor and the nearest point's time and value.
    var cursor = node('line', { 'class': 'cursor', y1: m.t, y2: m.t + ih, visibility: 'hidden' }, svg);
    var tip = node('g', { visibility: 'hidden' }, svg);
    var tipBg = node('rect', { 'class': 'tip-bg', rx: 4, height: 18 }, tip);
    var tipText = node('text', { 'class': 'tip-text', y: 13 }, tip);
    var hit = node('rect', { x: m.l, y: m.t, width: iw, height: ih, fill: 'transparent' }, svg);
    hit.addEventListener('mousemove', function (ev) {
      var box = svg.getBoundingClientRect();
      var px = (ev.clientX - box.left) * (W / box.width);
      var p = nearest(valued, x0 + (px - m.l) / iw * (x1 - x0));
      var x = X(p[0]);
      cursor.setAttribute('x1', x);
      cursor.setAttribute('x2', x);
      cursor.setAttribute('visibility', 'visible');
      tipText.textContent = Sky.fmtTime(p[0], 'datetime') + '  ' + Sky.fmtValue(p[1]);
      var tw = tipText.getComputedTextLength() + 12;
      tipText.setAttribute('x', 6);
      tipBg.setAttribute('width', tw);
      var tx = Math.min(Math.max(m.l, x - tw / 2), W - m.r - tw);
      tip.setAttribute('transform', 'translate(' + tx.toFixed(1) + ',' + m.t + ')');
      tip.setAttribute('visibility', 'visible');
    });
    hit.addEventListener('mouseleave', function () {
      cursor.setAttribute('visibility', 'hidden');
      tip.setAttribute('visibility', 'hidden');
    });
    el.replaceChildren(svg);
  }

  Sky.chart = function (el, points, opts) {
    opts = opts || {};
    el.skyChart = { points: points, opts: opts };
    draw(el, points, opts);
  };

  var resizeTimer = null;
  window.addEventListener('resize', function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      document.querySelectorAll('.chart').forEach(function (el) {
        if (el.skyChart) { draw(el, el.skyChart.points, el.skyChart.opts); }
      });
    }, 150);
  });
}());

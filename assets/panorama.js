/* Panorama view: converts typed dates to epoch seconds in the display zone before the search
 * is submitted (and epochs back to dates for display), and draws one graph per anomaly: from
 * Graphite (/api?graphite_metric=, a window around the anomaly picked with the range buttons,
 * 6 h by default or 7 d for Mirage, narrowed down to 1 h while Graphite's answer has averaged
 * the anomalous value away, with max_data_points = one per 10 s so Graphite never consolidates
 * below the archive's resolution; Redis when Graphite fails) when [graphite] url is set, else
 * from Redis (/api?metric=, the last FULL_DURATION) or the Mirage history. The stream
 * detector's scores (from the Redis series, /api?metric=…&scores=1) are shaded where they
 * overlap. */
(function () {
  'use strict';

  var Sky = window.Sky;
  var cfg = Sky.config();
  var DATE = /^(\d{4})-?(\d{2})-?(\d{2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$/;

  function toEpoch(text) {
    var m = DATE.exec(text.trim());
    if (!m) { return null; }
    return Sky.fromLocal(+m[1], +m[2], +m[3], +(m[4] || 0), +(m[5] || 0), +(m[6] || 0));
  }

  var RANGES = [3600, 21600, 86400, 604800];

  /* The anomaly's Graphite window for a range: it ends a fifth of the range after the anomaly
   * (never in the future), so the anomaly sits near the right edge with its lead-up in view. */
  function graphiteWindow(ts, secs) {
    var until = Math.min(Math.ceil(Date.now() / 1000) + 60, Math.round(ts + secs * 0.2));
    return { from: until - secs, until: until };
  }

  /* True when the anomalous value is among Graphite's points (else Graphite has averaged the
   * range into a coarser archive). */
  function valueShown(pts, value) {
    var lo = Infinity;
    var hi = -Infinity;
    pts.forEach(function (p) { if (p[1] < lo) { lo = p[1]; } if (p[1] > hi) { hi = p[1]; } });
    // Whisper keeps floats and Panorama rounds to 6 decimals: allow a little slack.
    var tol = (hi - lo) * 0.005 + Math.abs(value) * 1e-6;
    return !(value > hi + tol || value < lo - tol);
  }

  function stepOf(pts) {
    if (pts.length < 2) { return 0; }
    var d = [];
    for (var i = 1; i < pts.length && d.length < 200; i++) { d.push(pts[i][0] - pts[i - 1][0]); }
    d.sort(function (a, b) { return a - b; });
    return d[d.length >> 1];
  }

  function drawGraph(card) {
    var chart = card.querySelector('.chart');
    var note = card.querySelector('.source-note');
    var metric = card.getAttribute('data-metric');
    var ts = Number(card.getAttribute('data-ts'));
    var value = Number(card.getAttribute('data-value'));
    var full = Number(card.getAttribute('data-full-duration')) || 3600;
    var half = Math.max(30, full * (full > 120000 ? 0.01 : 0.02));
    var redisUrl = '/api?metric=' + encodeURIComponent('metrics.' + metric) + '&scores=1';
    var base = {
      marker: { ts: ts, value: value },
      band: { from: ts - half, until: ts + half },
      label: metric
    };
    function opts(extra) {
      var o = {};
      Object.keys(base).forEach(function (k) { o[k] = base[k]; });
      Object.keys(extra).forEach(function (k) { o[k] = extra[k]; });
      return o;
    }
    // The stream detector's scores, from the Redis series (only where it overlaps).
    var scores = null;
    var scoresAsked = null;
    function withScores() {
      if (!scoresAsked) {
        scoresAsked = Sky.getJSON(redisUrl).then(function (d) { scores = Sky.scoresOf(d); return d; })
          .catch(function () { return null; });
      }
      return scoresAsked;
    }

    function fromRedis(why) {
      return withScores().then(function (d) {
        var pts = (d && d.results) || [];
        note.textContent = why ? why + '; from Redis (last ' + Sky.duration(cfg.full_duration || 86400) + ')'
          : 'Redis (last ' + Sky.duration(cfg.full_duration || 86400) + ')';
        if (!d) {
          Sky.chartMessage(chart, (why ? why + '; ' : '') + 'not in Redis any more (configure [graphite] url for history)', !!why);
          return;
        }
        Sky.chart(chart, pts, opts({
          ranges: true,
          scores: scores,
          note: pts.length && pts[0][0] > ts ? 'anomaly older than the data in Redis' : undefined,
          empty: 'not in Redis any more'
        }));
      });
    }

    function mirageHistory() {
      var url = '/api?metric=' + encodeURIComponent('mirage.history.' + metric);
      note.textContent = 'Mirage history (' + Sky.duration(full) + ')';
      Sky.getJSON(url).then(function (d) {
        Sky.chart(chart, (d && d.results) || [], opts({ ranges: true, empty: 'no Mirage history' }));
      }).catch(function (err) {
        if (err.status === 404) { return fromRedis('no Mirage history'); }
        Sky.chartMessage(chart, 'could not load: ' + err.message, true);
      });
    }

    // Graphite: one range at a time; a range whose points do not include the anomalous value
    // (Graphite answered from a coarser archive) is narrowed once per step, down to 1 h.
    function fromGraphite(secs, auto) {
      var w = graphiteWindow(ts, secs);
      var url = '/api?graphite_metric=' + encodeURIComponent(metric) + '&from_timestamp=' + w.from +
        '&until_timestamp=' + w.until + '&max_data_points=' + Math.min(100000, Math.ceil(secs / 10));
      chart.setAttribute('data-range', String(secs));
      return Promise.all([Sky.getJSON(url), withScores()]).then(function (r) {
        var pts = (r[0] && r[0].results) || [];
        var smaller = RANGES.filter(function (x) { return x < secs; });
        var shown = !pts.length || valueShown(pts, value);
        if (!shown && auto && smaller.length) {
          return fromGraphite(smaller[smaller.length - 1], true);
        }
        var step = stepOf(pts);
        var every = step >= 60 ? Sky.duration(step) : step + ' s';
        note.textContent = 'Graphite' + (step ? ', one point per ' + every : '') +
          (auto && secs < defaultRange() ? ' (narrowed to ' + Sky.duration(secs) + ' to keep the anomaly\u2019s resolution)' : '');
        Sky.chart(chart, pts, opts({
          remote: { ranges: RANGES, current: secs, pick: function (s) { fromGraphite(s, false); } },
          scores: scores,
          note: shown ? undefined : 'Graphite has aggregated this range: the anomalous value is not among its points',
          empty: 'Graphite has no data for this window'
        }));
      }).catch(function (err) {
        if (err.status === 400) {
          Sky.chartMessage(chart, 'could not load: ' + err.message, true);
          return null;
        }
        // Graphite down, slow or refusing: the Redis copy, said so.
        return fromRedis('Graphite failed (' + err.message + ')');
      });
    }

    function defaultRange() {
      if (full > 1.5 * 86400) { return 604800; }
      return 21600;
    }

    if (cfg.graphite) {
      fromGraphite(defaultRange(), true);
    } else if (full > (cfg.full_duration || 86400) * 1.5) {
      // A Mirage anomaly over days: its built-in history (mirage.history.<metric>).
      mirageHistory();
    } else {
      fromRedis('').catch(function (err) {
        Sky.chartMessage(chart, 'could not load: ' + err.message, true);
      });
    }
  }

  document.addEventListener('DOMContentLoaded', function () {
    var form = document.getElementById('panorama-form');
    if (form) {
      form.querySelectorAll('input[data-time]').forEach(function (input) {
        if (/^\d{9,11}$/.test(input.value.trim())) {
          input.value = Sky.fmtTime(Number(input.value.trim()), 'minute');
        }
      });
      form.addEventListener('submit', function () {
        form.querySelectorAll('input[data-time]').forEach(function (input) {
          var epoch = toEpoch(input.value);
          if (epoch !== null) { input.value = String(epoch); }
        });
        // Leave empty fields out of the URL.
        form.querySelectorAll('input, select').forEach(function (f) {
          if (f.name && f.value === '') { f.disabled = true; }
        });
      });
    }
    var cards = Array.prototype.slice.call(document.querySelectorAll('#graphs .card'));
    Sky.whenVisible(cards, drawGraph);
  });
}());

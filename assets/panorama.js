/* Panorama view: converts typed dates to epoch seconds in the display zone before the search
 * is submitted (and epochs back to dates for display), and draws one graph per anomaly: from
 * Graphite (/api?graphite_metric=) when [graphite] url is set, else from Redis
 * (/api?metric=, the last FULL_DURATION). */
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

  function drawGraph(card) {
    var chart = card.querySelector('.chart');
    var note = card.querySelector('.source-note');
    var metric = card.getAttribute('data-metric');
    var ts = Number(card.getAttribute('data-ts'));
    var value = Number(card.getAttribute('data-value'));
    var from = Number(card.getAttribute('data-from'));
    var until = Number(card.getAttribute('data-until'));
    var full = Number(card.getAttribute('data-full-duration')) || 3600;
    var half = Math.max(30, full * (full > 120000 ? 0.01 : 0.02));
    var opts = {
      marker: { ts: ts, value: value },
      band: { from: ts - half, until: ts + half },
      label: metric
    };
    var url;
    if (cfg.graphite) {
      url = '/api?graphite_metric=' + encodeURIComponent(metric) + '&from_timestamp=' + from + '&until_timestamp=' + until;
      note.textContent = 'Graphite';
    } else if (full > (cfg.full_duration || 86400) * 1.5) {
      // A Mirage anomaly over days: its built-in history (mirage.history.<metric>).
      url = '/api?metric=' + encodeURIComponent('mirage.history.' + metric);
      note.textContent = 'Mirage history (' + Sky.duration(full) + ')';
    } else {
      url = '/api?metric=' + encodeURIComponent('metrics.' + metric);
      note.textContent = 'Redis (last ' + Sky.duration(cfg.full_duration || 86400) + ')';
    }
    Sky.getJSON(url).then(function (d) {
      var pts = (d && d.results) || [];
      if (!cfg.graphite && pts.length && pts[0][0] > ts) {
        opts.note = 'anomaly older than the data in Redis';
      }
      if (cfg.graphite && pts.length) {
        var lo = Infinity;
        var hi = -Infinity;
        pts.forEach(function (p) { if (p[1] < lo) { lo = p[1]; } if (p[1] > hi) { hi = p[1]; } });
        // Whisper keeps floats and Panorama rounds to 6 decimals: allow a little slack.
        var tol = (hi - lo) * 0.005 + Math.abs(value) * 1e-6;
        if (value > hi + tol || value < lo - tol) {
          opts.note = 'Graphite has aggregated this range: the anomalous value is not among its points';
        }
      }
      opts.empty = cfg.graphite ? 'Graphite has no data for this window' : 'not in Redis any more (configure [graphite] url for history)';
      Sky.chart(chart, pts, opts);
    }).catch(function (err) {
      var msg = err.status === 404 ? 'not in Redis any more (configure [graphite] url for history)' : 'could not load: ' + err.message;
      Sky.chartMessage(chart, msg, err.status !== 404);
    });
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

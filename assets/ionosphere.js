/* Ionosphere page: draws each profile's training series and, for each match, the profile
 * beside the matched anomaly's series, as explorable charts (Sky.chart: drag to zoom, the
 * range picker where the data covers it, the log toggle, dated time labels, a marker at the
 * anomaly the profile was trained on or the match was found at); enables/disables profiles
 * and adds layers with a JSON POST (a cross-site form cannot send one). */
(function () {
  'use strict';

  var Sky = window.Sky;

  /* The marker at `ts`: the value of the point nearest to it. */
  function markerAt(pts, ts) {
    if (!ts || !pts.length) { return null; }
    var best = null;
    pts.forEach(function (p) {
      if (p[1] !== null && (best === null || Math.abs(p[0] - ts) < Math.abs(best[0] - ts))) { best = p; }
    });
    return best ? { ts: ts, value: best[1] } : null;
  }

  function draw(el, url, ts, label) {
    if (!el) { return; }
    Sky.getJSON(url).then(function (d) {
      var pts = (d && d.results) || [];
      Sky.chart(el, pts, { marker: markerAt(pts, ts), label: label, ranges: true, empty: 'no data' });
    }).catch(function (err) {
      Sky.chartMessage(el, err.status === 404 ? 'series no longer kept' : 'could not load: ' + err.message, err.status !== 404);
    });
  }

  function postJSON(url, body) {
    return fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(body)
    }).then(function (res) {
      return res.text().then(function (text) {
        var b = null;
        try { b = text ? JSON.parse(text) : null; } catch (e) { b = null; }
        if (!res.ok) { throw new Error((b && b.message) || ('HTTP ' + res.status)); }
        return b;
      });
    });
  }

  document.addEventListener('DOMContentLoaded', function () {
    Sky.renderTimes(document);
    var trainedAt = {};
    var metricName = '';
    document.querySelectorAll('.fp-card').forEach(function (card) {
      var fp = card.getAttribute('data-fp');
      var ts = Number(card.getAttribute('data-ts'));
      metricName = card.getAttribute('data-metric') || metricName;
      trainedAt[fp] = ts;
      draw(card.querySelector('.chart'), '/api/ionosphere/series?fp_id=' + encodeURIComponent(fp), ts, metricName || 'fp ' + fp);
    });
    document.querySelectorAll('.match-card').forEach(function (card) {
      var fp = card.getAttribute('data-fp');
      var ts = Number(card.getAttribute('data-ts'));
      var metric = card.getAttribute('data-metric');
      draw(card.querySelector('.profile-chart'), '/api/ionosphere/series?fp_id=' + encodeURIComponent(fp), trainedAt[fp] || 0, metric);
      draw(card.querySelector('.anomaly-chart'), '/api/ionosphere/series?metric=' + encodeURIComponent(metric) + '&timestamp=' + ts, ts, metric);
    });
    document.querySelectorAll('.layers-form').forEach(function (form) {
      form.addEventListener('submit', function (e) {
        e.preventDefault();
        var fp = Number(form.getAttribute('data-fp'));
        var out = form.querySelector('.layers-status');
        var f = form.elements;
        var body = {
          fp_id: fp,
          label: f.label.value,
          d: { condition: f.d_condition.value, boundary: Number(f.d_boundary.value) },
          e: { condition: f.e_condition.value, boundary: Number(f.e_boundary.value), times_in_row: Number(f.e_times.value) }
        };
        postJSON('/api/ionosphere/layers', body).then(function (b) {
          if (out) { out.textContent = 'layers ' + b.layers_id + ' added'; }
        }).catch(function (err) {
          if (out) { out.textContent = 'fp ' + fp + ': ' + err.message; }
        });
      });
    });
    var status = document.getElementById('fp-status');
    document.querySelectorAll('.fp-toggle').forEach(function (button) {
      button.addEventListener('click', function () {
        var fp = Number(button.getAttribute('data-fp'));
        var enable = button.getAttribute('data-enable') === 'true';
        button.disabled = true;
        postJSON('/api/ionosphere/enabled', { fp_id: fp, enabled: enable }).then(function () {
          window.location.reload();
        }).catch(function (err) {
          button.disabled = false;
          if (status) { status.textContent = 'fp ' + fp + ': ' + err.message; }
        });
      });
    });
  });
}());

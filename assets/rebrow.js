/* rebrow: draws a Skyline msgpack series (embedded as JSON) and asks before a delete. */
(function () {
  'use strict';

  var Sky = window.Sky;

  document.addEventListener('DOMContentLoaded', function () {
    var data = document.getElementById('series-data');
    var chart = document.getElementById('series-chart');
    if (data && chart) {
      var points = [];
      try { points = JSON.parse(data.textContent); } catch (err) { points = []; }
      Sky.chart(chart, points, { label: Sky.config().key || 'series', ranges: true });
    }
    var del = document.getElementById('delete-form');
    if (del) {
      del.addEventListener('submit', function (e) {
        if (!window.confirm('Delete this key from Redis? This cannot be undone.')) { e.preventDefault(); }
      });
    }
  });
}());

/* "not anomalous — train" (Now and Panorama pages): creates an Ionosphere features profile
 * from the anomaly with a JSON POST to /api/ionosphere/train (a cross-site form cannot send
 * JSON). On the Now page the anomaly id is looked up in Panorama first. */
(function () {
  'use strict';

  var Sky = window.Sky;

  function anomalyId(button) {
    var id = button.getAttribute('data-anomaly-id');
    if (id) { return Promise.resolve(Number(id)); }
    var metric = button.getAttribute('data-metric');
    var ts = button.getAttribute('data-ts');
    var url = '/api/anomalies?metric=' + encodeURIComponent(metric) + '&from_timestamp=' + ts + '&until_timestamp=' + ts + '&limit=1';
    return Sky.getJSON(url).then(function (d) {
      var rows = (d && d.results) || [];
      if (!rows.length) { throw new Error('not recorded in Panorama (yet)'); }
      return rows[0].id;
    });
  }

  function train(button) {
    var label = window.prompt('Label for this features profile (optional):', '');
    if (label === null) { return; }
    // Learning is per namespace ([[ionosphere.learn]]); the server refuses it elsewhere.
    var learn = window.confirm('Also learn from later similar anomalies of this metric?\n(OK: learn; Cancel: this profile only. Only metrics in a learning namespace can learn.)');
    button.disabled = true;
    anomalyId(button).then(function (id) {
      return fetch('/api/ionosphere/train', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ anomaly_id: id, label: label, learn: learn })
      });
    }).then(function (res) {
      return res.json().then(function (b) {
        if (!res.ok) { throw new Error((b && b.message) || ('HTTP ' + res.status)); }
        return b;
      });
    }).then(function (b) {
      button.textContent = 'trained: profile ' + b.fp_id;
      var a = document.createElement('a');
      a.href = '/ionosphere?metric=' + encodeURIComponent(b.metric);
      a.textContent = 'Ionosphere';
      button.after(a);
    }).catch(function (err) {
      button.disabled = false;
      button.textContent = 'train failed: ' + err.message;
    });
  }

  document.addEventListener('click', function (e) {
    var button = e.target.closest && e.target.closest('.train-action');
    if (button) { train(button); }
  });
}());

/* Now view: draws each current anomaly's last FULL_DURATION from Redis (/api?metric=) with the
 * anomalous point marked, and polls /api/now every [webapp] refresh_secs, rebuilding the
 * cards (DOM calls only) when the analyzer has published a new list. */
(function () {
  'use strict';

  var Sky = window.Sky;
  var cfg = Sky.config();
  var version = cfg.version;
  var observer = null;

  function seriesUrl(metric) {
    // Skyline's own pages send the name with the metrics. prefix; the API accepts both.
    // scores=1 adds the stream detector's score per point (shaded under the graph).
    return '/api?metric=' + encodeURIComponent('metrics.' + metric) + '&scores=1';
  }

  function drawCard(card) {
    var chart = card.querySelector('.chart');
    var metric = card.getAttribute('data-metric');
    var ts = Number(card.getAttribute('data-ts'));
    var value = Number(card.getAttribute('data-value'));
    Sky.getJSON(seriesUrl(metric)).then(function (d) {
      Sky.chart(chart, (d && d.results) || [], {
        marker: { ts: ts, value: value },
        label: metric,
        ranges: true,
        scores: Sky.scoresOf(d),
        empty: 'no datapoints in Redis'
      });
    }).catch(function (err) {
      Sky.chartMessage(chart, err.status === 404 ? 'no longer in Redis' : 'could not load: ' + err.message, err.status !== 404);
    });
  }

  function watch() {
    if (observer) { observer.disconnect(); }
    var cards = Array.prototype.slice.call(document.querySelectorAll('#cards .card'));
    observer = Sky.whenVisible(cards, drawCard);
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function makeCard(a) {
    var card = el('article', 'card');
    card.tabIndex = 0;
    card.setAttribute('data-metric', a.metric);
    card.setAttribute('data-ts', String(a.timestamp));
    card.setAttribute('data-value', String(a.datapoint));
    card.setAttribute('data-stage', a.stage || 'analyzer');
    var head = el('header');
    var stage = el('span', 'pill stage-' + (a.stage || 'analyzer'), a.stage || 'analyzer');
    stage.title = 'decided by ' + (a.stage || 'analyzer');
    head.append(el('h2', '', a.metric), stage, el('b', '', Sky.fmtValue(a.datapoint)));
    var chart = el('div', 'chart');
    chart.appendChild(el('p', '', 'loading…'));
    var foot = el('footer');
    var time = el('time');
    time.setAttribute('data-ts', String(a.timestamp));
    var algos = el('span', '', (a.triggered_algorithms || []).length + '/' + (a.algorithms_run || []).length + ':');
    (a.triggered_algorithms || []).forEach(function (n) { algos.append(' ', el('i', '', n)); });
    var pano = el('a', '', 'Panorama');
    pano.href = '/panorama?metric=' + encodeURIComponent(a.metric);
    var redis = el('a', '', 'Redis');
    redis.href = '/rebrow/key?k=' + base64url('metrics.' + a.metric);
    foot.append(time, algos, pano, redis);
    if (a.trainable) {
      // The same action the server-rendered card has (train.js handles the click).
      var train = el('button', 'secondary train-action', 'not anomalous — train');
      train.type = 'button';
      train.setAttribute('data-metric', a.metric);
      train.setAttribute('data-ts', String(a.timestamp));
      foot.append(train);
    }
    card.append(head, chart, foot);
    return card;
  }

  function base64url(s) {
    var bytes = new TextEncoder().encode(s);
    var bin = '';
    bytes.forEach(function (b) { bin += String.fromCharCode(b); });
    return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function updateRun(run) {
    var p = document.getElementById('run-info');
    if (!p || !run) { return; }
    p.replaceChildren();
    p.append('Last analysis ');
    var t = el('time');
    t.setAttribute('data-ts', String(run.timestamp));
    var ago = el('span', 'ago');
    ago.setAttribute('data-ago', String(run.timestamp));
    p.append(t, ' ', ago, ': ', el('strong', '', String(run.total_analyzed)), ' of ',
      el('strong', '', String(run.total_metrics)), ' metrics analysed in ' + run.run_time.toFixed(2) + 's, ',
      el('strong', '', String(run.total_anomalies)), ' anomalous.');
    Sky.renderTimes(p);
  }

  function rebuild(d) {
    var box = document.getElementById('cards');
    var list = d.anomalies || [];
    box.replaceChildren.apply(box, list.map(makeCard));
    var count = document.getElementById('now-count');
    count.textContent = String(list.length);
    count.className = 'pill' + (list.length ? ' hot' : '');
    document.getElementById('empty').hidden = list.length > 0;
    Sky.renderTimes(box);
    watch();
  }

  function status(text) {
    var s = document.getElementById('now-status');
    if (s) { s.textContent = text; }
  }

  // The Cluster section (docs/cluster.md): shown only when the daemon runs on a Redis
  // Cluster; one row per live node from /api/cluster, text only.
  function cluster() {
    var sec = document.getElementById('cluster');
    if (!sec) { return; }
    Sky.getJSON('/api/cluster').then(function (d) {
      sec.hidden = !(d && d.cluster);
      if (sec.hidden) { return; }
      var body = document.getElementById('cluster-nodes');
      body.textContent = '';
      (d.nodes || []).forEach(function (n) {
        var tr = el('tr');
        var run = n.last_run || {};
        tr.append(el('td', '', n.id));
        var seen = el('td');
        var t = el('time', '', Sky.fmtTime(n.last_seen, 'datetime'));
        t.setAttribute('data-ts', String(n.last_seen));
        seen.append(t);
        tr.append(seen);
        tr.append(el('td', 'num', String(n.metrics_assigned)));
        tr.append(el('td', 'num', run.timestamp ? String(run.total_analyzed) : '—'));
        tr.append(el('td', 'num', run.timestamp ? run.run_time.toFixed(2) + ' s' : '—'));
        body.append(tr);
      });
      document.getElementById('cluster-count').textContent = String((d.nodes || []).length);
    }).catch(function () { /* the Now list reports Redis trouble already */ });
  }

  function poll() {
    cluster();
    Sky.getJSON('/api/now').then(function (d) {
      if (d.version !== version) {
        version = d.version;
        rebuild(d);
        status('Updated ' + Sky.fmtTime(Date.now() / 1000, 'datetime') + '.');
      }
      updateRun(d.run);
    }).catch(function (err) {
      status('Could not refresh (' + err.message + '); retrying.');
    }).then(function () {
      setTimeout(poll, Math.max(2, cfg.refresh_secs || 10) * 1000);
    });
  }

  function move(delta) {
    var cards = Array.prototype.slice.call(document.querySelectorAll('#cards .card'));
    if (!cards.length) { return; }
    var i = cards.indexOf(document.activeElement);
    var next = cards[Math.min(cards.length - 1, Math.max(0, i < 0 ? 0 : i + delta))];
    next.focus();
    next.scrollIntoView({ block: 'nearest' });
  }

  document.addEventListener('keydown', function (e) {
    if (e.target && /^(INPUT|SELECT|TEXTAREA)$/.test(e.target.tagName)) { return; }
    // Arrows move between cards only once a card has the focus (else they scroll the page).
    var onCard = document.activeElement && document.activeElement.classList.contains('card');
    if (e.key === 'j' || (onCard && e.key === 'ArrowDown')) { move(1); e.preventDefault(); }
    if (e.key === 'k' || (onCard && e.key === 'ArrowUp')) { move(-1); e.preventDefault(); }
  });

  document.addEventListener('DOMContentLoaded', function () {
    var fd = document.getElementById('full-duration');
    if (fd) { fd.textContent = Sky.duration(cfg.full_duration_secs || 86400); }
    watch();
    cluster();
    setTimeout(poll, Math.max(2, cfg.refresh_secs || 10) * 1000);
  });
}());

/* Skyline webapp: shared helpers (window.Sky). No inline script anywhere: the pages' data
 * comes from <script type="application/json" id="page-config"> and data-* attributes, and
 * every piece of text reaches the DOM through textContent, never innerHTML. */
(function () {
  'use strict';

  var Sky = window.Sky = window.Sky || {};

  // --- Errors: show script errors and CSP violations to the user (and fail browser tests).
  function showError(msg) {
    var el = document.getElementById('js-error');
    if (!el) { return; }
    el.hidden = false;
    el.textContent = 'A script error occurred: ' + msg;
  }
  window.addEventListener('error', function (e) {
    showError((e && e.message) || 'unknown error');
  });
  window.addEventListener('unhandledrejection', function (e) {
    var r = e && e.reason;
    showError((r && r.message) || String(r));
  });
  document.addEventListener('securitypolicyviolation', function (e) {
    showError('content security policy blocked ' + e.blockedURI + ' (' + e.violatedDirective + ')');
  });

  // --- Page configuration.
  var config = null;
  Sky.config = function () {
    if (config === null) {
      var el = document.getElementById('page-config');
      try {
        config = el ? JSON.parse(el.textContent) : {};
      } catch (err) {
        config = {};
      }
    }
    return config;
  };

  // --- Time zones: [webapp] timezone = "browser" or an IANA name.
  var zone = null;
  var zoneNote = '';
  Sky.zone = function () {
    if (zone !== null) { return zone; }
    var wanted = Sky.config().timezone || 'browser';
    var browser = 'UTC';
    try {
      browser = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
    } catch (err) { browser = 'UTC'; }
    if (wanted === 'browser') {
      zone = browser;
    } else {
      try {
        new Intl.DateTimeFormat('en-US', { timeZone: wanted }).format(0);
        zone = wanted;
      } catch (err) {
        zone = 'UTC';
        zoneNote = ' (unknown zone ' + wanted + ')';
      }
    }
    return zone;
  };

  var partsFmt = {};
  function parts(ts) {
    var z = Sky.zone();
    if (!partsFmt[z]) {
      partsFmt[z] = new Intl.DateTimeFormat('en-GB', {
        timeZone: z, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
        hour: '2-digit', minute: '2-digit', second: '2-digit'
      });
    }
    var out = {};
    partsFmt[z].formatToParts(new Date(ts * 1000)).forEach(function (p) { out[p.type] = p.value; });
    if (out.hour === '24') { out.hour = '00'; }
    return out;
  }

  /* Seconds east of UTC of the display zone at epoch `ts`. */
  Sky.offset = function (ts) {
    var p = parts(ts);
    var asUtc = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second) / 1000;
    return Math.round(asUtc - Math.floor(ts));
  };

  /* Epoch seconds of a wall-clock time in the display zone. */
  Sky.fromLocal = function (y, mo, d, h, mi, s) {
    var guess = Date.UTC(y, mo - 1, d, h, mi, s || 0) / 1000;
    var t = guess - Sky.offset(guess);
    return guess - Sky.offset(t);
  };

  function pad(n) { return (n < 10 ? '0' : '') + n; }

  /* 'datetime' → 2026-11-21 10:00:00, 'minute' → 2026-11-21 10:00, 'time' → 10:00,
   * 'seconds' → 10:00:30, 'date' → 2026-11-21, 'day' → 11-21. */
  Sky.fmtTime = function (ts, style) {
    var p = parts(ts);
    switch (style) {
      case 'time': return p.hour + ':' + p.minute;
      case 'seconds': return p.hour + ':' + p.minute + ':' + p.second;
      case 'date': return p.year + '-' + p.month + '-' + p.day;
      case 'day': return p.month + '-' + p.day;
      case 'minute': return p.year + '-' + p.month + '-' + p.day + ' ' + p.hour + ':' + p.minute;
      default: return p.year + '-' + p.month + '-' + p.day + ' ' + p.hour + ':' + p.minute + ':' + p.second;
    }
  };

  Sky.ago = function (ts) {
    var s = Math.max(0, Math.round(Date.now() / 1000 - ts));
    if (s < 60) { return s + ' s ago'; }
    if (s < 3600) { return Math.floor(s / 60) + ' min ago'; }
    if (s < 86400) { return Math.floor(s / 3600) + ' h ' + pad(Math.floor(s / 60) % 60) + ' min ago'; }
    return Math.floor(s / 86400) + ' d ago';
  };

  Sky.duration = function (secs) {
    if (secs % 86400 === 0) { return (secs / 86400) + (secs === 86400 ? ' day' : ' days'); }
    if (secs % 3600 === 0) { return (secs / 3600) + ' h'; }
    return Math.round(secs / 60) + ' min';
  };

  /* Compact numbers for axes: 1.2k, 3.4M; plain otherwise. */
  Sky.fmtNum = function (v) {
    if (v === null || v === undefined || !isFinite(v)) { return '–'; }
    var a = Math.abs(v);
    if (a >= 1e12) { return trim(v / 1e12) + 'T'; }
    if (a >= 1e9) { return trim(v / 1e9) + 'G'; }
    if (a >= 1e6) { return trim(v / 1e6) + 'M'; }
    if (a >= 1e4) { return trim(v / 1e3) + 'k'; }
    if (a === 0) { return '0'; }
    if (a < 1e-3) { return v.toExponential(1); }
    return String(+v.toPrecision(4));
  };
  function trim(x) { return String(+x.toFixed(x >= 100 || x <= -100 ? 0 : 1)); }

  /* Full value for tooltips. */
  Sky.fmtValue = function (v) {
    if (v === null || v === undefined || !isFinite(v)) { return 'null'; }
    return String(+v.toPrecision(10));
  };

  /* Rewrites every <time data-ts> in the display zone. */
  Sky.renderTimes = function (root) {
    (root || document).querySelectorAll('time[data-ts]').forEach(function (el) {
      var ts = Number(el.getAttribute('data-ts'));
      if (isFinite(ts)) {
        el.textContent = Sky.fmtTime(ts, 'datetime');
        el.title = new Date(ts * 1000).toISOString() + ' · epoch ' + ts;
      }
    });
    (root || document).querySelectorAll('[data-ago]').forEach(function (el) {
      var ts = Number(el.getAttribute('data-ago'));
      if (isFinite(ts)) { el.textContent = '(' + Sky.ago(ts) + ')'; }
    });
  };

  /* GET JSON; rejects with an Error carrying the server's message and status. */
  Sky.getJSON = function (url) {
    return fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (res) {
        return res.text().then(function (text) {
          var body = null;
          try { body = text ? JSON.parse(text) : null; } catch (err) { body = null; }
          if (!res.ok) {
            var e = new Error((body && body.message) || ('HTTP ' + res.status));
            e.status = res.status;
            throw e;
          }
          return body;
        });
      });
  };

  /* Shows a message in place of a chart. */
  Sky.chartMessage = function (el, text, isError) {
    var div = document.createElement('div');
    div.className = 'chart-msg' + (isError ? ' error' : '');
    div.textContent = text;
    el.replaceChildren(div);
  };

  /* Calls fn(el) once for each element when it first comes near the viewport. */
  Sky.whenVisible = function (elements, fn) {
    if (!('IntersectionObserver' in window)) {
      elements.forEach(fn);
      return null;
    }
    var io = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) {
        if (e.isIntersecting) {
          io.unobserve(e.target);
          fn(e.target);
        }
      });
    }, { rootMargin: '300px 0px' });
    elements.forEach(function (el) { io.observe(el); });
    return io;
  };

  document.addEventListener('DOMContentLoaded', function () {
    var label = document.getElementById('tz-label');
    if (label) { label.textContent = 'Times in ' + Sky.zone() + zoneNote; }
    document.querySelectorAll('.tz-name').forEach(function (el) { el.textContent = Sky.zone() + zoneNote; });
    Sky.renderTimes(document);
    setInterval(function () {
      document.querySelectorAll('[data-ago]').forEach(function (el) {
        var ts = Number(el.getAttribute('data-ago'));
        if (isFinite(ts)) { el.textContent = '(' + Sky.ago(ts) + ')'; }
      });
    }, 10000);
  });
}());

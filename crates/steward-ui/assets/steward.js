// Steward's dashboard: times in the viewer's zone, and pages kept current from the event
// stream. Pages work without it; it only makes them live.
(function () {
  "use strict";
  var base = document.documentElement.getAttribute("data-base") || "";
  // What the page has seen and done, for whoever looks (tests, a curious operator).
  var stats = window.stewardLive = { events: 0, refreshes: 0, failures: 0 };

  function localTimes(root) {
    var times = root.querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var t = times[i];
      var d = new Date(t.getAttribute("datetime"));
      if (isNaN(d.getTime())) continue;
      t.title = t.getAttribute("datetime");
      t.textContent = d.toLocaleString(undefined, {
        year: "numeric", month: "short", day: "numeric",
        hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short"
      });
    }
  }

  // A refresh waits while someone is filling in a form, so typing is never lost.
  function busy(main) {
    var active = document.activeElement;
    return active && main.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName);
  }

  var refreshing = false, again = false, lastRefresh = 0;
  var MIN_GAP_MS = 250;

  function refresh() {
    var main = document.getElementById("main");
    if (!main) return;
    if (refreshing || busy(main)) { again = true; return; }
    refreshing = true;
    lastRefresh = Date.now();
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.redirected && /\/sign-in/.test(response.url)) {
          location.assign(response.url);
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("main");
        var events = main.querySelector("[data-events]");
        if (!fresh) return;
        var keep = fresh.querySelector("[data-events]");
        if (events && keep) keep.replaceWith(events);
        localTimes(fresh);
        main.replaceWith(fresh);
        stats.refreshes++;
      })
      .catch(function () { stats.failures++; /* the stream's reconnect brings the next try */ })
      .then(function () {
        refreshing = false;
        if (again) { again = false; schedule(); }
      });
  }

  var timer = null;
  function schedule() {
    if (timer) return;
    var wait = Math.max(0, MIN_GAP_MS - (Date.now() - lastRefresh));
    timer = setTimeout(function () { timer = null; refresh(); }, wait);
  }

  function describe(type, data) {
    var d = data && data.data ? data.data : data || {};
    var name = d.name || d.check || d.service || d.queue || d.schedule || d.heartbeat ||
      (d.labels && d.labels.alertname) || d.action || "";
    var state = d.to || d.state || d.status || "";
    return type.replace(/_/g, " ") + (name ? " · " + name : "") + (state ? " → " + state : "");
  }

  function note(type, raw) {
    var list = document.querySelector("[data-events]");
    if (!list) return;
    var data = null;
    try { data = JSON.parse(raw); } catch (e) { data = null; }
    var item = document.createElement("li");
    var when = document.createElement("time");
    when.textContent = new Date().toLocaleTimeString();
    item.appendChild(when);
    item.appendChild(document.createTextNode(describe(type, data)));
    var placeholder = list.querySelector(".muted");
    if (placeholder) placeholder.remove();
    list.insertBefore(item, list.firstChild);
    while (list.children.length > 50) list.removeChild(list.lastChild);
  }

  function follow(types) {
    var indicator = document.querySelector("[data-live-state]");
    function show(state, text) {
      if (!indicator) return;
      indicator.setAttribute("data-state", state);
      indicator.textContent = text;
    }
    var source = new EventSource(base + "/live");
    var wasDown = false;
    source.onopen = function () {
      show("live", "● live");
      // After a restart or an outage, what changed meanwhile is read once.
      if (wasDown) { wasDown = false; schedule(); }
    };
    source.onerror = function () {
      wasDown = true;
      show("down", "▲ reconnecting…");
      if (source.readyState === EventSource.CLOSED) {
        // Refused (the session ended): the page itself says what to do next.
        setTimeout(function () { location.reload(); }, 2000);
      }
    };
    types.forEach(function (type) {
      source.addEventListener(type, function (event) {
        stats.events++;
        note(type, event.data);
        schedule();
      });
    });
    source.addEventListener("reset", function () { schedule(); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    var live = document.body.getAttribute("data-live");
    if (live && window.EventSource) follow(live.split(","));
  });
})();

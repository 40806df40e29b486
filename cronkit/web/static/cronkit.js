/* cronkit dashboard: live progress bars (polls /live at most once a second) and
   confirmation of dangerous forms. Text goes in with textContent, never as HTML. */
(function () {
  "use strict";
  var FINISHED = { success: 1, failed: 1, canceled: 1 };

  function liveNodes() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-job]"));
  }

  function apply(job) {
    var ref = job.site + ":" + job.id;
    liveNodes().forEach(function (node) {
      if (node.getAttribute("data-job") !== ref) return;
      node.setAttribute("data-status", job.status);
      node.querySelector("progress").value = job.progress;
      node.querySelector(".pct").textContent = job.progress + "%";
      var status = node.querySelector(".jstatus");
      status.textContent = job.status.toUpperCase();
      status.className = "jstatus status s-" + job.status;
      node.querySelector(".jtext").textContent = job.status_text;
    });
    document.querySelectorAll("[data-job-actions]").forEach(function (box) {
      if (box.getAttribute("data-job-actions") !== ref) return;
      box.querySelectorAll("[data-when]").forEach(function (el) {
        var when = el.getAttribute("data-when");
        el.hidden = when === "active" ? !!FINISHED[job.status]
                                      : !(job.status === "failed" || job.status === "canceled");
      });
    });
    var full = document.querySelector(".jtext-full");
    if (full && document.querySelectorAll("[data-job]").length === 1) full.textContent = job.status_text;
    var message = document.querySelector(".jmessage");
    if (message && document.querySelectorAll("[data-job]").length === 1) message.textContent = job.message;
  }

  function poll() {
    var refs = liveNodes().filter(function (n) {
      return !FINISHED[n.getAttribute("data-status")];
    }).map(function (n) { return n.getAttribute("data-job"); });
    if (!refs.length) return;
    var query = refs.filter(function (r, i) { return refs.indexOf(r) === i; })
      .map(function (r) { return "j=" + encodeURIComponent(r); }).join("&");
    fetch("/live?" + query, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : []; })
      .then(function (jobs) { jobs.forEach(apply); })
      .catch(function () {})
      .then(function () { setTimeout(poll, 1000); });
  }

  // The charts: every 5 s each [data-charts] section is fetched again and swapped in
  // whole. It is the server's own escaped fragment, parsed inert (DOMParser runs no
  // script); the tables left open stay open.
  function refreshCharts() {
    if (document.hidden) return;
    document.querySelectorAll("[data-charts]").forEach(function (section) {
      fetch(section.getAttribute("data-charts"),
            { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html === null) return;
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.querySelector("[data-charts]");
          if (!fresh) return;
          section.querySelectorAll("figure[id] details[open]").forEach(function (d) {
            var same = fresh.querySelector("#" + d.parentNode.id + " details");
            if (same) same.open = true;
          });
          section.replaceWith(document.importNode(fresh, true));
        })
        .catch(function () {});
    });
  }

  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  });

  // The cron form's live preview: the periodicity in words and the next times, fetched
  // from its page 400 ms after the last keystroke; text goes in with textContent.
  function livePreview(form) {
    var out = document.getElementById("live-preview");
    var url = form.getAttribute("data-preview");
    if (!out || !url) return;
    var timer = null;
    function field(id) { return form.querySelector("#" + id); }
    function add(tag, cls, text) {
      var node = document.createElement(tag);
      if (cls) node.className = cls;
      node.textContent = text;
      out.appendChild(node);
      return node;
    }
    function show(data) {
      out.textContent = "";
      if (data.errors) {
        add("p", "error", Object.keys(data.errors).map(function (k) { return data.errors[k]; }).join("; "));
        return;
      }
      add("p", "words", data.description);
      if (data.note) add("p", "note", data.note);
      if (!data.next.length) return;
      add("p", "", "Next " + data.next.length + " times, in " + data.timezone + ":");
      var list = add("ol", "next-times", "");
      data.next.forEach(function (t) {
        var item = document.createElement("li");
        item.textContent = t;
        list.appendChild(item);
      });
    }
    function update() {
      if (!field("periodicity").value.trim()) { out.textContent = ""; return; }
      var query = new URLSearchParams();
      query.set("periodicity", field("periodicity").value);
      query.set("timezone", field("timezone").value);
      if (field("seconds_first").checked) query.set("seconds_first", "on");
      fetch(url + "?" + query.toString(), { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) { if (data) show(data); })
        .catch(function () {});
    }
    ["periodicity", "timezone", "seconds_first"].forEach(function (id) {
      var input = field(id);
      if (!input) return;
      input.addEventListener(id === "seconds_first" ? "change" : "input", function () {
        clearTimeout(timer);
        timer = setTimeout(update, 400);
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setTimeout(poll, 1000);
    if (document.querySelector("[data-charts]")) setInterval(refreshCharts, 5000);
    Array.prototype.forEach.call(document.querySelectorAll("form[data-preview]"), livePreview);
  });
})();

// Refreshes the nodes table from /admin/nodes.json every 2 s. Cells are filled with
// textContent only (never innerHTML), rows are updated in place so a click is not lost,
// and the action forms are rebuilt only when a node's state changes.
(function () {
  "use strict";
  var tbody = document.getElementById("nodes-body");
  var status = document.getElementById("live-status");
  var meta = document.querySelector('meta[name="ferry-csrf"]');
  if (!tbody || !meta) return;
  var csrf = meta.content;
  var transitions = [["draining", "Drain"], ["disabled", "Disable"], ["active", "Activate"]];
  // As node_view.rs: a disabled node is not offered Drain.
  function offered(state, t) { return t[0] !== state && !(state === "disabled" && t[0] === "draining"); }

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function actions(n) {
    var td = el("td", { "class": "c-actions", "data-state": n.state });
    td.appendChild(el("a", { href: "/admin/nodes/" + n.id }, "Details"));
    transitions.forEach(function (t) {
      if (!offered(n.state, t)) return;
      var form = el("form", { method: "post", action: "/admin/nodes/" + n.id + "/state", "class": "inline" });
      form.appendChild(el("input", { type: "hidden", name: "csrf", value: csrf }));
      form.appendChild(el("input", { type: "hidden", name: "state", value: t[0] }));
      form.appendChild(el("button", { type: "submit", "data-action": t[0] }, t[1]));
      td.appendChild(form);
    });
    return td;
  }

  function newRow(n) {
    var tr = el("tr", { "data-id": String(n.id), "data-node": n.name });
    var name = el("td", { "class": "c-name" });
    name.appendChild(el("a", { href: "/admin/nodes/" + n.id }, n.name));
    name.appendChild(el("div", { "class": "sub" }, n.ssh + " · " + n.public_url));
    tr.appendChild(name);
    var state = el("td", { "class": "c-state" });
    state.appendChild(el("span", {}));
    tr.appendChild(state);
    var health = el("td", { "class": "c-health" });
    health.appendChild(el("span", {}));
    health.appendChild(el("div", { "class": "sub c-reason" }));
    tr.appendChild(health);
    tr.appendChild(el("td", { "class": "c-free num" }));
    tr.appendChild(el("td", { "class": "c-total num" }));
    var beat = el("td", { "class": "c-heartbeat" });
    beat.appendChild(el("span", { "class": "c-beat" }));
    beat.appendChild(el("div", { "class": "sub c-since" }));
    tr.appendChild(beat);
    tr.appendChild(el("td", { "class": "c-replicas num" }));
    tr.appendChild(el("td", { "class": "c-actions" }));
    return tr;
  }

  function update(tr, n) {
    var q = function (c) { return tr.querySelector("td." + c); };
    tr.setAttribute("data-node", n.name);
    q("c-name").querySelector("a").textContent = n.name;
    q("c-name").querySelector(".sub").textContent = n.ssh + " · " + n.public_url;
    var state = q("c-state").querySelector("span");
    state.className = "badge s-" + n.state;
    state.textContent = n.state;
    var health = q("c-health").querySelector("span");
    health.className = "badge h-" + n.health;
    health.textContent = n.health;
    health.title = n.last_error || "";
    q("c-health").querySelector(".c-reason").textContent = n.down_reason || "";
    q("c-free").textContent = n.free;
    q("c-total").textContent = n.total;
    var beat = q("c-heartbeat");
    beat.querySelector(".c-beat").textContent = n.heartbeat;
    beat.querySelector(".c-since").textContent = n.down_since || "";
    q("c-replicas").textContent = String(n.replicas);
    var acts = q("c-actions");
    if (acts.getAttribute("data-state") !== n.state) tr.replaceChild(actions(n), acts);
  }

  function render(nodes) {
    var seen = {};
    var empty = tbody.querySelector("tr.empty");
    if (empty && nodes.length) empty.remove();
    nodes.forEach(function (n) {
      seen[n.id] = true;
      var tr = tbody.querySelector('tr[data-id="' + n.id + '"]');
      if (!tr) {
        tr = newRow(n);
        tbody.appendChild(tr);
      }
      update(tr, n);
    });
    Array.prototype.slice.call(tbody.querySelectorAll("tr[data-id]")).forEach(function (tr) {
      if (!seen[tr.getAttribute("data-id")]) tr.remove();
    });
  }

  var busy = false;
  function refresh() {
    if (busy) return;
    busy = true;
    fetch("/admin/nodes.json", { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.redirected || r.status === 401 || r.status === 403) {
          // Session gone or no longer an administrator: let the server say so.
          window.location.reload();
          return null;
        }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (data) {
        if (!data) return;
        render(data.nodes);
        status.textContent = "Refreshed every 2 s; last at " + new Date().toLocaleTimeString() + ".";
        status.className = "live";
      })
      .catch(function (e) {
        status.textContent = "Live refresh failing (" + e.message + "); retrying.";
        status.className = "live stale";
      })
      .then(function () { busy = false; });
  }
  setInterval(refresh, 2000);
})();

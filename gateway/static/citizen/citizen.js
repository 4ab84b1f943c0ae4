// Plain citizen form: loads the Open311 services, posts the form to requests.json.
// The portal's channel key comes from the page address (?api_key=...).
(function () {
  "use strict";
  var base = "/open311/v2/";
  var form = document.getElementById("form");
  var select = document.getElementById("service_code");
  var attrs = document.getElementById("attributes");
  var result = document.getElementById("result");
  var params = new URLSearchParams(location.search);
  document.getElementById("api_key").value = params.get("api_key") || "";
  var idempotencyKey = null;

  function show(text, ok) {
    result.hidden = false;
    result.className = ok ? "ok" : "err";
    result.textContent = text;
  }

  function field(attr) {
    var label = document.createElement("label");
    label.textContent = attr.description + (attr.required ? " *" : "");
    var input;
    if (attr.values && attr.values.length) {
      input = document.createElement("select");
      attr.values.forEach(function (v) {
        var o = document.createElement("option");
        o.value = v.key; o.textContent = v.name; input.appendChild(o);
      });
    } else {
      input = document.createElement("input");
      if (attr.datatype === "datetime") input.type = "datetime-local";
    }
    input.name = "attribute[" + attr.code + "]";
    input.required = !!attr.required;
    label.appendChild(input);
    return label;
  }

  function loadDefinition() {
    attrs.textContent = "";
    fetch(base + "services/" + encodeURIComponent(select.value) + ".json")
      .then(function (r) { return r.ok ? r.json() : { attributes: [] }; })
      .then(function (d) { d.attributes.forEach(function (a) { attrs.appendChild(field(a)); }); });
  }

  fetch(base + "services.json").then(function (r) { return r.json(); }).then(function (list) {
    list.forEach(function (s) {
      var o = document.createElement("option");
      o.value = s.service_code; o.textContent = s.description; select.appendChild(o);
    });
    loadDefinition();
  });
  select.addEventListener("change", loadDefinition);

  document.getElementById("use_location").addEventListener("change", function (e) {
    if (!e.target.checked || !navigator.geolocation) return;
    navigator.geolocation.getCurrentPosition(function (p) {
      document.getElementById("lat").value = p.coords.latitude.toFixed(6);
      document.getElementById("long").value = p.coords.longitude.toFixed(6);
    });
  });

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    idempotencyKey = idempotencyKey || (Date.now().toString(36) + Math.random().toString(36).slice(2));
    fetch(base + "requests.json", {
      method: "POST", body: new URLSearchParams(new FormData(form)),
      headers: { "Idempotency-Key": idempotencyKey }
    }).then(function (r) { return r.json().then(function (b) { return [r.ok, b]; }); })
      .then(function (res) {
        if (res[0]) { show("已受理 Accepted. Your case number: " + res[1][0].service_request_id, true); idempotencyKey = null; form.reset(); }
        else { show("错误 Error: " + res[1].map(function (x) { return x.description; }).join("; "), false); }
      }).catch(function () { show("网络错误 Network error, please retry.", false); });
  });
}());

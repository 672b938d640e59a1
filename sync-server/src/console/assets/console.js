// FitKart admin console: keyboard shortcuts for the review queue. Every page works without
// this file; it only adds shortcuts. No data is read or sent here.
(function () {
  "use strict";
  var items = Array.prototype.slice.call(document.querySelectorAll("article.review"));
  if (items.length === 0) {
    return;
  }
  var current = -1;
  function select(index, focus) {
    if (index < 0 || index >= items.length) {
      return;
    }
    if (current >= 0) {
      items[current].classList.remove("current");
    }
    current = index;
    items[current].classList.add("current");
    if (focus) {
      items[current].focus();
      items[current].scrollIntoView({ block: "start" });
    }
  }
  function submit(action) {
    if (current < 0) {
      return;
    }
    var form = items[current].querySelector('form[data-action="' + action + '"]');
    if (form) {
      form.requestSubmit();
    }
  }
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    var typing = target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT");
    if (typing || event.altKey || event.ctrlKey || event.metaKey) {
      return;
    }
    switch (event.key) {
      case "j": select(current + 1, true); break;
      case "k": select(current - 1, true); break;
      case "a": submit("approve"); break;
      case "r": submit("reject"); break;
      case "n":
        if (current >= 0) {
          var note = items[current].querySelector("input[data-note]");
          if (note) { note.focus(); }
        }
        break;
      default: return;
    }
    event.preventDefault();
  });
  select(0, false);
})();

/* MapScribe's HTML report: the search field (the page reads the same without it: the form
   stays hidden when scripts do not run) and keyboard focus for links within the page. */
(function () {
  "use strict";
  var form = document.getElementById("search-form");
  var input = document.getElementById("search");
  var status = document.getElementById("search-status");
  if (form && input && status) {
    var items = Array.prototype.slice.call(
      document.querySelectorAll("li[data-region], li[data-region-tile], li[data-tile]"));
    var lists = Array.prototype.slice.call(document.querySelectorAll("ol.tiles, ol.regions"));
    var update = function () {
      var words = input.value.toLowerCase().split(/\s+/).filter(function (w) { return w; });
      var tiles = 0;
      var regions = 0;
      items.forEach(function (item) {
        var text = item.textContent.toLowerCase();
        var match = words.every(function (w) { return text.indexOf(w) !== -1; });
        item.hidden = !match;
        if (match && item.hasAttribute("data-tile")) { tiles += 1; }
        if (match && item.hasAttribute("data-region")) { regions += 1; }
      });
      lists.forEach(function (list) {
        var empty = list.querySelector("li:not([hidden])") === null;
        list.hidden = empty;
        var heading = list.previousElementSibling;
        if (heading && (heading.tagName === "H3" || heading.tagName === "H4")) {
          heading.hidden = empty;
        }
      });
      status.textContent = words.length === 0 ? "" :
        (tiles === 1 ? "1 tile" : tiles + " tiles") + " and " +
        (regions === 1 ? "1 region" : regions + " regions") + " match “" +
        input.value.trim() + "”.";
    };
    input.addEventListener("input", update);
    form.addEventListener("submit", function (event) { event.preventDefault(); update(); });
    form.hidden = false;
  }
  // A link within the page moves the keyboard focus to what it points at, so that Tab goes
  // on from there (browsers only scroll when the target is not focusable).
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest('a[href^="#"]') : null;
    if (!link) { return; }
    var target = document.getElementById(decodeURIComponent(link.getAttribute("href").slice(1)));
    if (!target) { return; }
    if (!target.hasAttribute("tabindex")) { target.setAttribute("tabindex", "-1"); }
    window.setTimeout(function () { target.focus(); }, 0);
  });
}());

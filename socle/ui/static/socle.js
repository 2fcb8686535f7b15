// socle — progressive enhancement only: every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // "Tout sélectionner": a checkbox with data-select-all="name" ticks every checkbox named "name".
  document.querySelectorAll("input[data-select-all]").forEach((master) => {
    master.addEventListener("change", () => {
      document.querySelectorAll(`input[type=checkbox][name="${master.dataset.selectAll}"]`)
        .forEach((box) => { box.checked = master.checked; });
    });
  });
  // Forms that ask for a confirmation before an irreversible act (data-confirm="message").
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
  // A form sent once is not sent again while its answer comes (a double click on « Créer » made two of
  // everything). Registered after the confirmations, so a cancelled confirmation does not count as sent.
  document.querySelectorAll("form[method=post]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (event.defaultPrevented) return;
      if (form.dataset.sent) { event.preventDefault(); return; }
      form.dataset.sent = "1";
      form.setAttribute("aria-busy", "true");
    });
  });
  // Back to a page from the browser's history: its forms can be sent again.
  window.addEventListener("pageshow", (event) => {
    if (!event.persisted) return;
    document.querySelectorAll("form[data-sent]").forEach((form) => {
      delete form.dataset.sent;
      form.removeAttribute("aria-busy");
    });
  });
  // Drag and drop onto a file input's zone; the plain file input stays usable by keyboard.
  document.querySelectorAll(".dropzone").forEach((zone) => {
    const input = zone.querySelector("input[type=file]");
    if (!input) return;
    zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      if (event.dataTransfer && event.dataTransfer.files.length) {
        input.files = event.dataTransfer.files;
        input.dispatchEvent(new Event("change", { bubbles: true }));
      }
    });
  });
  // Focus the error summary so a screen reader announces it first.
  const summary = document.querySelector(".error-summary");
  if (summary) summary.focus();
});

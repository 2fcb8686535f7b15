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
  // Forms that ask for a confirmation before an irreversible act (data-confirm="message" on the form, or on
  // the button that sends it, which then names its own act). With data-confirm-count="name" on the form,
  // "{count}" in the question is the number of checkboxes "name" ticked, and the button's data-confirm-one is
  // asked when there is one. Nothing is asked about a form the server will refuse anyway: a required field left
  // empty, or nothing ticked; it is sent as it is, and the server's page says what is missing (as without
  // this file).
  const unfilled = (form) => Array.from(form.querySelectorAll("[required]")).some((field) => {
    if (field.disabled) return false;
    if (field.type === "checkbox") return !field.checked;
    if (field.type === "radio") return !form.querySelector(`input[type=radio][name="${field.name}"]:checked`);
    return !field.value.trim();
  });
  document.querySelectorAll("form").forEach((form) => {
    if (!form.dataset.confirm && !form.querySelector("[data-confirm]")) return;
    form.addEventListener("submit", (event) => {
      const asker = event.submitter && event.submitter.dataset.confirm ? event.submitter : form;
      if (!asker.dataset.confirm || unfilled(form)) return;
      let question = asker.dataset.confirm;
      if (form.dataset.confirmCount) {
        const count = form.querySelectorAll(
          `input[type=checkbox][name="${form.dataset.confirmCount}"]:checked`).length;
        if (count === 0) return;
        if (count === 1 && asker.dataset.confirmOne) question = asker.dataset.confirmOne;
        question = question.replaceAll("{count}", String(count));
      }
      if (!window.confirm(question)) event.preventDefault();
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
  // A block of no use on a phone (the card signature needs a computer with its reader) comes folded in a
  // <details data-open-wide>: opened here on a wider screen, folded on a narrow one.
  if (window.matchMedia("(min-width: 48rem)").matches) {
    document.querySelectorAll("details[data-open-wide]").forEach((details) => { details.open = true; });
  }
  // Focus the error summary so a screen reader announces it first.
  const summary = document.querySelector(".error-summary");
  if (summary) summary.focus();
});

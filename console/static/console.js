// The console's few conveniences. Every page works without this file: the forms post and
// the job page refreshes itself. With it: select-all, "Mis filtros" applied on choosing,
// saving a selection in one step, the resend confirmation as a dialog, and live progress.
"use strict";

(function () {
  function rowBoxes(form) {
    return Array.from(form.querySelectorAll('input[type="checkbox"][name="ids"]'));
  }

  function selection(form) {
    var boxes = rowBoxes(form);
    var checked = boxes.filter(function (b) { return b.checked; }).length;
    form.querySelectorAll("[data-selected-count]").forEach(function (el) {
      el.textContent = String(checked);
    });
    var all = form.querySelector("[data-select-all]");
    if (all) {
      all.checked = boxes.length > 0 && checked === boxes.length;
      all.indeterminate = checked > 0 && checked < boxes.length;
    }
    return checked;
  }

  function setupRows(form) {
    var all = form.querySelector("[data-select-all]");
    if (all) {
      all.addEventListener("change", function () {
        rowBoxes(form).forEach(function (b) { b.checked = all.checked; });
        selection(form);
      });
    }
    rowBoxes(form).forEach(function (b) {
      b.addEventListener("change", function () { selection(form); });
    });
    selection(form);

    var dialog = document.getElementById("resend-dialog");
    form.querySelectorAll("[data-resend]").forEach(function (button) {
      button.addEventListener("click", function (event) {
        if (!dialog || typeof dialog.showModal !== "function") {
          return; // the server's confirmation page asks instead
        }
        event.preventDefault();
        var kind = button.getAttribute("data-resend");
        var count = kind === "selected" ? selection(form) : Number(button.getAttribute("data-count"));
        if (!count) {
          window.alert(form.getAttribute("data-none"));
          return;
        }
        var title = button.getAttribute("data-title") ||
          (count === 1 ? form.getAttribute("data-confirm-one")
                       : form.getAttribute("data-confirm-many").replace("%s", String(count)));
        dialog.querySelector("[data-dialog-title]").textContent = title;
        dialog.returnValue = "";
        dialog.onclose = function () {
          if (dialog.returnValue !== "confirm") {
            return;
          }
          form.elements.namedItem("confirm").value = "1";
          form.elements.namedItem("reason").value = dialog.querySelector("[data-dialog-reason]").value;
          form.elements.namedItem("as_sent").value =
            dialog.querySelector("[data-dialog-as-sent]").checked ? "1" : "";
          form.requestSubmit(button);
        };
        dialog.showModal();
      });
    });
  }

  function setupFilters(form) {
    var save = form.querySelector("#save");
    var nameBox = form.querySelector("[data-save-name]");
    var name = form.querySelector("#save_name");
    function toggle() {
      if (nameBox) {
        nameBox.hidden = !save.checked;
      }
    }
    if (save) {
      save.addEventListener("change", function () {
        toggle();
        if (save.checked && name) {
          name.focus();
        }
      });
      toggle();
    }
    // Saving is a write: with the box ticked the same fields go to the save action as a
    // post (with the CSRF token), which answers with the saved selection applied.
    form.addEventListener("submit", function (event) {
      if (!save || !save.checked) {
        return;
      }
      if (!name.value.trim()) {
        event.preventDefault();
        name.focus();
        return;
      }
      form.method = "post";
      form.action = form.getAttribute("data-save-action");
      var token = document.createElement("input");
      token.type = "hidden";
      token.name = "csrf_token";
      token.value = form.getAttribute("data-csrf");
      form.appendChild(token);
    });
  }

  function setupJob(box) {
    var url = box.getAttribute("data-job");
    var words = JSON.parse(box.getAttribute("data-status-words") || "{}");
    var bar = box.querySelector("[data-job-bar]");
    function show(job) {
      bar.max = job.total || 1;
      bar.value = job.total ? job.done : 1;
      box.querySelector("[data-job-done]").textContent = String(job.done);
      box.querySelector("[data-job-total]").textContent = String(job.total);
      box.querySelector("[data-job-queued]").textContent = String(job.queued);
      box.querySelector("[data-job-status]").textContent = words[job.status] || job.status;
      box.setAttribute("data-job-state", job.status);
      if (job.status !== "running") {
        var cancel = box.querySelector("[data-job-cancel]");
        if (cancel) {
          cancel.remove();
        }
      }
    }
    function poll() {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) {
            throw new Error(String(response.status));
          }
          return response.json();
        })
        .then(function (job) {
          show(job);
          if (job.status === "running") {
            window.setTimeout(poll, 1000);
          } else {
            window.location.reload(); // the final counts and skip reasons, server-rendered
          }
        })
        .catch(function () { window.setTimeout(poll, 3000); });
    }
    if (box.getAttribute("data-job-state") !== "done" &&
        box.getAttribute("data-job-state") !== "cancelled") {
      window.setTimeout(poll, 500);
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () {
        if (select.value) {
          select.form.submit();
        }
      });
    });
    var rows = document.getElementById("rows");
    if (rows) {
      setupRows(rows);
    }
    // On a phone the table matters first: the filters start folded (one tap opens them).
    document.querySelectorAll("details[data-collapse-narrow]").forEach(function (details) {
      if (window.matchMedia("(max-width: 640px)").matches) {
        details.open = false;
      }
    });
    var filters = document.getElementById("filters");
    if (filters) {
      setupFilters(filters);
    }
    var job = document.querySelector("[data-job]");
    if (job) {
      setupJob(job);
    }
  });
})();

/*
 * Search selects (portal.forms.SearchSelect): a <select data-search-url> over a large table
 * (hosts) holds only the empty choice and the chosen row. This adds a search box above it;
 * typing asks the API list for the first matching rows (?q=...&limit=...) and offers them,
 * keeping the chosen row. Focusing the select the first time offers the first rows.
 *
 * data-search-url     the API list (session authentication; reads need the view permission)
 * data-search-label   the field of an API row shown as its label ("name")
 * data-search-depends a field of the same form whose value narrows the search ("cluster")
 *
 * No inline handlers: the page works under a strict CSP.
 */
(function () {
  "use strict";

  const LIMIT = 25;
  const DELAY_MS = 250;

  function enhance(select) {
    const labelField = select.dataset.searchLabel || "name";
    const label = (select.labels && select.labels.length
      ? select.labels[0].textContent.replace("*", "") : select.name).trim();
    const search = document.createElement("input");
    search.type = "search";
    search.className = "form-control form-control-sm mb-1";
    search.placeholder = `Search ${label.toLowerCase()}s`;
    search.autocomplete = "off";
    search.setAttribute("aria-label", `Search ${label.toLowerCase()}s`);
    search.setAttribute("aria-controls", select.id);
    select.before(search);

    const status = document.createElement("div");
    status.className = "form-text small mt-0";
    status.setAttribute("aria-live", "polite");
    select.after(status);

    let timer = null;
    let controller = null;
    let loaded = false;

    function params(term) {
      const query = new URLSearchParams({ limit: String(LIMIT) });
      if (term) {
        query.set("q", term);
      }
      const depends = select.dataset.searchDepends;
      if (depends && select.form && select.form.elements[depends]) {
        const value = select.form.elements[depends].value;
        if (value) {
          query.set(depends, value);
        }
      }
      return query;
    }

    function fill(rows, more) {
      const chosen = select.value;
      for (const option of Array.from(select.options)) {
        if (option.value !== "" && option.value !== chosen) {
          option.remove();
        }
      }
      for (const row of rows) {
        const value = String(row.id);
        if (value === chosen) {
          continue;
        }
        select.append(new Option(String(row[labelField]), value));
      }
      status.textContent = rows.length === 0 ? "No match."
        : more ? `First ${rows.length} matches; type to narrow.` : "";
    }

    async function load(term) {
      if (controller) {
        controller.abort();
      }
      controller = new AbortController();
      try {
        const response = await fetch(`${select.dataset.searchUrl}?${params(term)}`, {
          headers: { Accept: "application/json" },
          credentials: "same-origin",
          signal: controller.signal,
        });
        if (!response.ok) {
          status.textContent = "Search is not available.";
          return;
        }
        const data = await response.json();
        loaded = true;
        fill(data.results || [], Boolean(data.next));
        select.dispatchEvent(new CustomEvent("search-select:loaded", { bubbles: true }));
      } catch (error) {
        if (error.name !== "AbortError") {
          status.textContent = "Search is not available.";
        }
      }
    }

    search.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => load(search.value.trim()), DELAY_MS);
    });
    search.addEventListener("keydown", (event) => {
      if (event.key === "Enter") { // choose, do not submit the form half-typed
        event.preventDefault();
        clearTimeout(timer);
        load(search.value.trim());
      }
    });
    select.addEventListener("focus", () => {
      if (!loaded) {
        load(search.value.trim());
      }
    });
    const depends = select.dataset.searchDepends;
    if (depends && select.form && select.form.elements[depends]) {
      select.form.elements[depends].addEventListener("change", () => { loaded = false; });
    }
  }

  document.querySelectorAll("select[data-search-url]").forEach(enhance);
})();

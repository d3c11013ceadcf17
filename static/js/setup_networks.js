/*
 * Setup host networks.
 *
 * The page keeps the whole request client-side: `model` is a working copy of the host as
 * the server described it (#setup-model), edited by drag and drop, by the keyboard pickers
 * and by the two editors. Preview and Apply send only the differences from `original`,
 * in the shape of the API's setup-networks request; the server checks every rule at once
 * and answers with the violations, each naming the interface it concerns when it can.
 *
 * No inline handlers: everything is wired here, so the page works under a strict CSP.
 */
(function () {
  "use strict";

  const root = document.getElementById("setup");
  if (!root) {
    return;
  }
  const original = JSON.parse(document.getElementById("setup-model").textContent);
  let model = clone(original);
  let synced = new Set();
  let violations = [];
  let previewed = null; // the request (as JSON text) that the last good preview showed
  const selected = new Set(); // NICs ticked for a new bond
  let editing = null; // network name in the attachment editor
  let editingBond = null; // bond name in the bond editor, "" for a new bond

  const $ = (id) => document.getElementById(id);

  function clone(value) {
    return JSON.parse(JSON.stringify(value));
  }

  function csrfToken() {
    const headers = document.body.getAttribute("hx-headers");
    return headers ? JSON.parse(headers)["X-CSRFToken"] : "";
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) {
        continue;
      }
      if (key === "class") {
        node.className = value;
      } else if (key === "text") {
        node.textContent = value;
      } else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role") {
        node.setAttribute(key, value);
      } else if (value === true) {
        node.setAttribute(key, "");
      } else {
        node.setAttribute(key, value);
      }
    }
    for (const child of children) {
      if (child !== null && child !== undefined && child !== false) {
        node.append(child);
      }
    }
    return node;
  }

  // --- The model --------------------------------------------------------------------

  function slaveOf() {
    const map = {};
    for (const bond of model.bonds) {
      for (const slave of bond.slaves) {
        map[slave] = bond.name;
      }
    }
    return map;
  }

  /** Interfaces that can carry networks: bonds, then NICs that are no bond's slave. */
  function interfaces() {
    const slaves = slaveOf();
    const list = model.bonds.map((b) => ({kind: "bond", name: b.name, data: b}));
    for (const nic of model.nics) {
      if (!(nic.name in slaves)) {
        list.push({kind: "nic", name: nic.name, data: nic});
      }
    }
    return list;
  }

  function network(name) {
    return model.networks.find((n) => n.name === name) || {name: name, roles: []};
  }

  function attachment(name) {
    return model.attachments.find((a) => a.network === name);
  }

  function originalAttachment(name) {
    return original.attachments.find((a) => a.network === name);
  }

  function noIp() {
    return {boot_protocol: "none", address: "", netmask: "", gateway: ""};
  }

  function attach(name, iface) {
    const current = attachment(name);
    if (current) {
      current.interface = iface;
    } else {
      const before = originalAttachment(name);
      const restored = before ? clone(before) : {
        network: name, ipv4: noIp(), ipv6: noIp(), via_label: false, in_sync: true,
        out_of_sync: [],
      };
      restored.interface = iface;
      model.attachments.push(restored);
    }
    changed(name);
  }

  function detach(name) {
    model.attachments = model.attachments.filter((a) => a.network !== name);
    synced.delete(name);
    changed();
  }

  /** Move what a NIC carries (networks, labels) onto the bond that takes it as a slave. */
  function absorbIntoBond(bond, nicName) {
    for (const att of model.attachments) {
      if (att.interface === nicName) {
        att.interface = bond.name;
      }
    }
    const nic = model.nics.find((n) => n.name === nicName);
    if (nic && nic.labels.length) {
      bond.labels = Array.from(new Set([...bond.labels, ...nic.labels])).sort();
      nic.labels = [];
    }
  }

  function breakBond(name) {
    const bond = model.bonds.find((b) => b.name === name);
    const heir = bond.slaves.slice().sort()[0];
    for (const att of model.attachments) {
      if (att.interface === name) {
        att.interface = heir;
      }
    }
    const nic = model.nics.find((n) => n.name === heir);
    if (nic && bond.labels.length) {
      nic.labels = Array.from(new Set([...nic.labels, ...bond.labels])).sort();
    }
    model.bonds = model.bonds.filter((b) => b.name !== name);
    changed();
  }

  function sameIp(a, b) {
    return ["boot_protocol", "address", "netmask", "gateway"].every(
      (k) => (a[k] || "") === (b[k] || ""));
  }

  function sameList(a, b) {
    return JSON.stringify(a.slice().sort()) === JSON.stringify(b.slice().sort());
  }

  /** The differences from the stored host, as a setup-networks request. */
  function buildRequest() {
    const request = {
      bonds: [], removed_bonds: [], attachments: [], removed_attachments: [], labels: {},
      synced_networks: Array.from(synced).sort(),
      check_connectivity: $("opt-check").checked,
      connectivity_timeout: parseInt($("opt-timeout").value, 10) || null,
      commit_on_success: $("opt-save").checked,
    };
    if (request.connectivity_timeout === null) {
      delete request.connectivity_timeout;
    }
    for (const bond of model.bonds) {
      const before = original.bonds.find((b) => b.name === bond.name);
      if (!before || before.mode !== bond.mode || before.options !== bond.options
          || !sameList(before.slaves, bond.slaves)) {
        request.bonds.push({name: bond.name, mode: bond.mode, options: bond.options,
                            slaves: bond.slaves.slice()});
      }
      const labelsBefore = before ? before.labels : [];
      if (!sameList(labelsBefore, bond.labels)) {
        request.labels[bond.name] = bond.labels.slice();
      }
    }
    for (const bond of original.bonds) {
      if (!model.bonds.find((b) => b.name === bond.name)) {
        request.removed_bonds.push(bond.name);
      }
    }
    for (const nic of model.nics) {
      const before = original.nics.find((n) => n.name === nic.name);
      if (!sameList(before.labels, nic.labels)) {
        request.labels[nic.name] = nic.labels.slice();
      }
    }
    for (const att of model.attachments) {
      const before = originalAttachment(att.network);
      if (!before || before.interface !== att.interface || !sameIp(before.ipv4, att.ipv4)
          || !sameIp(before.ipv6, att.ipv6)) {
        request.attachments.push({network: att.network, interface: att.interface,
                                  ipv4: clone(att.ipv4), ipv6: clone(att.ipv6)});
      }
    }
    for (const att of original.attachments) {
      if (!attachment(att.network)) {
        request.removed_attachments.push(att.network);
      }
    }
    return request;
  }

  // --- Rendering --------------------------------------------------------------------

  function networkFacts(net) {
    const facts = [];
    facts.push(net.vlan === null || net.vlan === undefined ? "untagged" : `VLAN ${net.vlan}`);
    if (net.mtu) {
      facts.push(`MTU ${net.mtu}`);
    }
    facts.push(net.vm_network ? "VM" : "non-VM");
    return facts.join(" · ");
  }

  function badges(net, att) {
    const out = el("span", {class: "chip-badges"});
    for (const role of net.roles || []) {
      out.append(el("span", {class: "badge text-bg-primary", text: role.replace("_", " ")}), " ");
    }
    if (net.required) {
      out.append(el("span", {class: "badge text-bg-light border", text: "required"}), " ");
    }
    if (att && att.via_label) {
      out.append(el("span", {class: "badge text-bg-light border", text: `label ${net.label}`}));
    }
    return out;
  }

  function ipSummary(att) {
    const parts = [];
    for (const family of ["ipv4", "ipv6"]) {
      const cfg = att[family];
      if (cfg.boot_protocol === "static") {
        parts.push(`${family} ${cfg.address}/${cfg.netmask}` +
                   (cfg.gateway ? ` gw ${cfg.gateway}` : ""));
      } else if (cfg.boot_protocol === "dhcp") {
        parts.push(`${family} dhcp`);
      } else if (family === "ipv4") {
        parts.push("no IPv4");
      }
    }
    return parts.join(" · ");
  }

  function outOfSync(att) {
    if (att.in_sync) {
      return null;
    }
    const box = el("div", {class: "out-of-sync mt-1", "data-out-of-sync": att.network});
    const syncId = `sync-${att.network}`;
    box.append(el("span", {class: "badge text-bg-warning me-2", text: "out of sync"}));
    const toggle = el("input", {class: "form-check-input me-1", type: "checkbox", id: syncId,
                                "data-action": "sync", "data-network": att.network});
    toggle.checked = synced.has(att.network);
    box.append(el("span", {class: "form-check form-check-inline small m-0"}, toggle,
                  el("label", {class: "form-check-label", for: syncId, text: "Sync"})));
    if (att.out_of_sync.length) {
      const rows = att.out_of_sync.map((d) => el("tr", {},
        el("td", {text: d.property}),
        el("td", {text: JSON.stringify(d.wanted)}),
        el("td", {text: JSON.stringify(d.reported)})));
      box.append(el("table", {class: "table table-sm table-bordered small mb-0 mt-1",
                              "aria-label": `Differences of ${att.network}`},
        el("thead", {}, el("tr", {}, el("th", {scope: "col", text: "Property"}),
                           el("th", {scope: "col", text: "Wanted"}),
                           el("th", {scope: "col", text: "Reported"}))),
        el("tbody", {}, ...rows)));
    } else {
      box.append(el("span", {class: "small text-body-secondary",
                             text: "a network change waits to be pushed"}));
    }
    return box;
  }

  function attachedChip(att) {
    const net = network(att.network);
    const chip = el("div", {class: "net-chip attached" + (att.in_sync ? "" : " warning"),
                            draggable: "true", "data-network": att.network});
    chip.append(el("div", {class: "d-flex align-items-center gap-2"},
      el("span", {class: "drag-handle", "aria-hidden": "true", text: "⠿"}),
      el("span", {class: "fw-semibold", text: att.network}),
      el("span", {class: "small text-body-secondary", text: networkFacts(net)}),
      badges(net, att),
      el("span", {class: "ms-auto d-flex gap-1"},
        el("button", {type: "button", class: "btn btn-sm btn-outline-primary",
                      "data-action": "edit", "data-network": att.network,
                      "aria-label": `Edit ${att.network}`, text: "Edit"}),
        el("button", {type: "button", class: "btn btn-sm btn-outline-danger",
                      "data-action": "detach", "data-network": att.network,
                      "aria-label": `Detach ${att.network}`, text: "Detach"}))));
    chip.append(el("div", {class: "small", text: ipSummary(att)}));
    const flag = outOfSync(att);
    if (flag) {
      chip.append(flag);
    }
    return chip;
  }

  function interfaceOptions(select, current) {
    select.replaceChildren();
    for (const iface of interfaces()) {
      const option = el("option", {value: iface.name,
                                   text: `${iface.name}${iface.kind === "bond" ? " (bond)" : ""}`});
      option.selected = iface.name === current;
      select.append(option);
    }
  }

  function unattachedChip(net) {
    const selectId = `pick-${net.name}`;
    const select = el("select", {class: "form-select form-select-sm", id: selectId,
                                 "aria-label": `Interface for ${net.name}`});
    interfaceOptions(select, null);
    return el("div", {class: "net-chip", draggable: "true", "data-network": net.name},
      el("div", {class: "d-flex align-items-center gap-2 mb-1"},
        el("span", {class: "drag-handle", "aria-hidden": "true", text: "⠿"}),
        el("span", {class: "fw-semibold", text: net.name}),
        el("span", {class: "small text-body-secondary", text: networkFacts(net)})),
      el("div", {class: "mb-1"}, badges(net, null)),
      el("div", {class: "input-group input-group-sm"}, select,
        el("button", {type: "button", class: "btn btn-outline-primary", "data-action": "attach",
                      "data-network": net.name, "aria-label": `Attach ${net.name}`,
                      text: "Attach"})));
  }

  function violationList(items) {
    if (!items.length) {
      return null;
    }
    return el("ul", {class: "violations list-unstyled small mb-0 px-3 pt-2", role: "alert"},
      ...items.map((v) => el("li", {class: "text-danger", "data-code": v.code,
                                    text: v.message})));
  }

  function interfaceCard(iface) {
    const known = new Set(interfaces().map((i) => i.name));
    const mine = violations.filter((v) => v.interface === iface.name
      || (iface.kind === "bond" && iface.data.slaves.includes(v.interface) && !known.has(v.interface)));
    const card = el("div", {class: "card iface-card" + (mine.length ? " border-danger" : ""),
                            id: `iface-${iface.name}`, "data-interface": iface.name});
    const header = el("div", {class: "card-header d-flex align-items-center flex-wrap gap-2"});
    if (iface.kind === "nic") {
      const boxId = `select-${iface.name}`;
      const box = el("input", {class: "form-check-input m-0", type: "checkbox", id: boxId,
                               "data-action": "select", "data-nic": iface.name,
                               "aria-label": `Select ${iface.name} for a bond`});
      box.checked = selected.has(iface.name);
      header.append(box);
    }
    header.append(el("span", {class: "fw-semibold", text: iface.name}));
    if (iface.kind === "bond") {
      const mode = model.bond_modes.find((m) => m[0] === iface.data.mode);
      header.append(el("span", {class: "badge text-bg-secondary", text: "bond"}),
                    el("span", {class: "small text-body-secondary",
                                text: `${mode ? mode[1] : iface.data.mode} · slaves ` +
                                      iface.data.slaves.join(", ")}));
    } else {
      const nic = iface.data;
      header.append(el("span", {class: "badge " + (nic.link_up ? "text-bg-success" : "text-bg-danger"),
                                text: nic.link_up ? "link up" : "link down"}),
                    el("span", {class: "small text-body-secondary",
                                text: [nic.mac, nic.speed ? `${nic.speed} Mb/s` : ""]
                                  .filter(Boolean).join(" · ")}));
    }
    const labelsId = `labels-${iface.name}`;
    const labels = el("input", {class: "form-control form-control-sm labels-input", id: labelsId,
                                "data-action": "labels", "data-interface": iface.name,
                                placeholder: "labels", autocomplete: "off"});
    labels.value = iface.data.labels.join(", ");
    header.append(el("span", {class: "ms-auto d-flex align-items-center gap-1"},
      el("label", {class: "small text-body-secondary", for: labelsId, text: "Labels"}), labels,
      iface.kind === "bond" ? el("button", {type: "button", class: "btn btn-sm btn-outline-primary",
        "data-action": "edit-bond", "data-bond": iface.name, text: "Edit bond"}) : null,
      iface.kind === "bond" ? el("button", {type: "button", class: "btn btn-sm btn-outline-danger",
        "data-action": "break-bond", "data-bond": iface.name, text: "Break bond"}) : null));
    card.append(header);
    const list = violationList(mine);
    if (list) {
      card.append(list);
    }
    const zone = el("div", {class: "card-body drop-zone p-2 vstack gap-2",
                            "data-interface": iface.name,
                            "aria-label": `Networks on ${iface.name}`});
    const here = model.attachments.filter((a) => a.interface === iface.name)
      .sort((a, b) => a.network.localeCompare(b.network));
    for (const att of here) {
      zone.append(attachedChip(att));
    }
    if (!here.length) {
      zone.append(el("div", {class: "drop-hint small text-body-secondary",
                             text: "No networks: drop one here."}));
    }
    card.append(zone);
    return card;
  }

  function render(focusNetwork) {
    const known = new Set(interfaces().map((i) => i.name));
    $("interfaces").replaceChildren(...interfaces().map(interfaceCard));
    const free = model.networks.filter((n) => !attachment(n.name));
    $("unattached").replaceChildren(...(free.length ? free.map(unattachedChip)
      : [el("div", {class: "small text-body-secondary",
                    text: "Every network of the cluster is attached."})]));
    const general = violations.filter((v) => !v.interface || !known.has(v.interface));
    const box = $("general-violations");
    box.classList.toggle("d-none", !general.length);
    box.replaceChildren(...(general.length ? [el("ul", {class: "mb-0 ps-3"},
      ...general.map((v) => el("li", {"data-code": v.code, text: v.message})))] : []));
    const bondButton = $("bond-selected");
    bondButton.disabled = selected.size < 2;
    bondButton.textContent = selected.size ? `Bond selected NICs (${selected.size})`
      : "Bond selected NICs";
    $("apply-button").disabled = previewed === null;
    $("apply-hint").textContent = previewed === null ? "Preview the change to enable Apply."
      : "Apply sends exactly what the preview shows.";
    if (focusNetwork) {
      const target = root.querySelector(`[data-action="edit"][data-network="${CSS.escape(focusNetwork)}"]`)
        || root.querySelector(`[data-action="attach"][data-network="${CSS.escape(focusNetwork)}"]`);
      if (target) {
        target.focus();
      }
    }
  }

  /** The model changed: the last preview no longer describes it. */
  function changed(focusNetwork) {
    previewed = null;
    $("preview").classList.add("d-none");
    render(focusNetwork);
  }

  // --- Editors ----------------------------------------------------------------------

  function fillSelect(select, choices, current) {
    select.replaceChildren(...choices.map(([value, label]) => {
      const option = el("option", {value: String(value), text: label});
      option.selected = String(value) === String(current);
      return option;
    }));
  }

  function openAttachmentEditor(name) {
    const att = attachment(name);
    editing = name;
    $("attachment-editor-title").textContent = `Network ${name}`;
    interfaceOptions($("att-interface"), att.interface);
    for (const family of ["ipv4", "ipv6"]) {
      fillSelect($(`att-${family}-boot_protocol`), model.boot_protocols,
                 att[family].boot_protocol);
      for (const key of ["address", "netmask", "gateway"]) {
        $(`att-${family}-${key}`).value = att[family][key] || "";
      }
    }
    $("att-sync-row").classList.toggle("d-none", att.in_sync);
    $("att-sync").checked = synced.has(name);
    bootstrap.Modal.getOrCreateInstance($("attachment-editor")).show();
  }

  function saveAttachmentEditor(event) {
    event.preventDefault();
    const att = attachment(editing);
    att.interface = $("att-interface").value;
    for (const family of ["ipv4", "ipv6"]) {
      att[family] = {boot_protocol: $(`att-${family}-boot_protocol`).value};
      for (const key of ["address", "netmask", "gateway"]) {
        att[family][key] = $(`att-${family}-${key}`).value.trim();
      }
    }
    if (!att.in_sync) {
      if ($("att-sync").checked) {
        synced.add(editing);
      } else {
        synced.delete(editing);
      }
    }
    bootstrap.Modal.getOrCreateInstance($("attachment-editor")).hide();
    changed(editing);
  }

  function nextBondName() {
    const taken = new Set([...model.bonds, ...original.bonds].map((b) => b.name));
    for (let i = 0; ; i++) {
      if (!taken.has(`bond${i}`)) {
        return `bond${i}`;
      }
    }
  }

  function openBondEditor(name) {
    const bond = name ? model.bonds.find((b) => b.name === name) : null;
    editingBond = name || "";
    $("bond-editor-title").textContent = bond ? `Bond ${bond.name}` : "New bond";
    $("bond-name").value = bond ? bond.name : nextBondName();
    $("bond-name").readOnly = Boolean(bond);
    const mode = bond ? bond.mode : 1;
    fillSelect($("bond-mode"), model.bond_modes, mode);
    $("bond-options").value = bond ? bond.options : model.bond_default_options[String(mode)];
    const slaves = slaveOf();
    const candidates = model.nics.filter((n) => !(n.name in slaves) || slaves[n.name] === name);
    $("bond-slaves").replaceChildren(...candidates.map((nic) => {
      const id = `bond-slave-${nic.name}`;
      const box = el("input", {class: "form-check-input", type: "checkbox", id: id,
                               value: nic.name});
      box.checked = bond ? bond.slaves.includes(nic.name) : selected.has(nic.name);
      return el("div", {class: "form-check"}, box,
                el("label", {class: "form-check-label", for: id, text: nic.name}));
    }));
    bootstrap.Modal.getOrCreateInstance($("bond-editor")).show();
  }

  function saveBondEditor(event) {
    event.preventDefault();
    const slaves = Array.from($("bond-slaves").querySelectorAll("input:checked"))
      .map((box) => box.value);
    let bond = model.bonds.find((b) => b.name === editingBond);
    if (!bond) {
      bond = {name: $("bond-name").value.trim(), mode: 1, options: "", slaves: [], labels: []};
      model.bonds.push(bond);
    }
    const added = slaves.filter((s) => !bond.slaves.includes(s));
    bond.mode = parseInt($("bond-mode").value, 10);
    bond.options = $("bond-options").value.trim();
    bond.slaves = slaves;
    for (const nic of added) {
      absorbIntoBond(bond, nic);
    }
    selected.clear();
    bootstrap.Modal.getOrCreateInstance($("bond-editor")).hide();
    changed();
  }

  // --- Talking to the server --------------------------------------------------------

  async function post(url, request) {
    const response = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrfToken(),
                "Accept": "application/json"},
      body: JSON.stringify(request),
    });
    const type = response.headers.get("Content-Type") || "";
    if (!type.includes("application/json")) {
      return {ok: false, violations: [{code: "http_" + response.status, field: "",
        message: `The server answered ${response.status} ${response.statusText}.`}]};
    }
    return response.json();
  }

  function busy(button, on) {
    button.disabled = on;
    button.setAttribute("aria-busy", on ? "true" : "false");
  }

  async function preview() {
    const request = buildRequest();
    const button = $("preview-button");
    busy(button, true);
    try {
      const answer = await post(root.dataset.previewUrl, request);
      violations = answer.violations || [];
      if (answer.ok) {
        previewed = JSON.stringify(request);
        $("preview-body").innerHTML = answer.html; // rendered (escaped) by Django
        // The commands panel polls its preview job: let htmx see the new markup.
        if (window.htmx) window.htmx.process($("preview-body"));
        $("preview").classList.remove("d-none");
        render();
        $("preview").focus();
      } else {
        previewed = null;
        $("preview").classList.add("d-none");
        render();
        const first = root.querySelector(".violations, #general-violations:not(.d-none)");
        if (first) {
          first.scrollIntoView({block: "center"});
        }
      }
    } finally {
      busy(button, false);
    }
  }

  async function apply() {
    const request = buildRequest();
    if (JSON.stringify(request) !== previewed) {
      previewed = null;
      render();
      return;
    }
    const button = $("apply-button");
    busy(button, true);
    const answer = await post(root.dataset.applyUrl, request);
    if (answer.ok) {
      window.location.assign(answer.redirect);
      return;
    }
    violations = answer.violations || [];
    previewed = null;
    render();
  }

  // --- Wiring -----------------------------------------------------------------------

  root.addEventListener("click", (event) => {
    const target = event.target.closest("[data-action]");
    if (!target) {
      return;
    }
    const action = target.dataset.action;
    if (action === "attach") {
      const select = $(`pick-${target.dataset.network}`);
      attach(target.dataset.network, select.value);
    } else if (action === "detach") {
      detach(target.dataset.network);
      const picker = $(`pick-${target.dataset.network}`);
      if (picker) {
        picker.focus();
      }
    } else if (action === "edit") {
      openAttachmentEditor(target.dataset.network);
    } else if (action === "edit-bond") {
      openBondEditor(target.dataset.bond);
    } else if (action === "break-bond") {
      breakBond(target.dataset.bond);
    }
  });

  root.addEventListener("change", (event) => {
    const target = event.target;
    const action = target.dataset.action;
    if (action === "select") {
      if (target.checked) {
        selected.add(target.dataset.nic);
      } else {
        selected.delete(target.dataset.nic);
      }
      render();
      $(`select-${target.dataset.nic}`).focus();
    } else if (action === "sync") {
      if (target.checked) {
        synced.add(target.dataset.network);
      } else {
        synced.delete(target.dataset.network);
      }
      changed();
      $(`sync-${target.dataset.network}`).focus();
    } else if (action === "labels") {
      const name = target.dataset.interface;
      const iface = interfaces().find((i) => i.name === name);
      iface.data.labels = Array.from(new Set(target.value.split(/[\s,]+/)
        .filter(Boolean))).sort();
      changed();
    } else if (target.closest(".card") && target.id.startsWith("opt-")) {
      changed();
    }
  });

  // HTML5 drag and drop: chips are draggable, interfaces and the unattached list accept.
  root.addEventListener("dragstart", (event) => {
    const chip = event.target.closest && event.target.closest(".net-chip");
    if (!chip) {
      return;
    }
    event.dataTransfer.setData("text/plain", chip.dataset.network);
    event.dataTransfer.effectAllowed = "move";
    chip.classList.add("dragging");
  });
  root.addEventListener("dragend", (event) => {
    const chip = event.target.closest && event.target.closest(".net-chip");
    if (chip) {
      chip.classList.remove("dragging");
    }
  });
  root.addEventListener("dragover", (event) => {
    const zone = event.target.closest && event.target.closest(".drop-zone");
    if (zone) {
      event.preventDefault();
      event.dataTransfer.dropEffect = "move";
      zone.classList.add("drop-over");
    }
  });
  root.addEventListener("dragleave", (event) => {
    const zone = event.target.closest && event.target.closest(".drop-zone");
    if (zone && !zone.contains(event.relatedTarget)) {
      zone.classList.remove("drop-over");
    }
  });
  root.addEventListener("drop", (event) => {
    const zone = event.target.closest && event.target.closest(".drop-zone");
    if (!zone) {
      return;
    }
    event.preventDefault();
    zone.classList.remove("drop-over");
    const name = event.dataTransfer.getData("text/plain");
    if (!name || !model.networks.concat(model.attachments.map((a) => ({name: a.network})))
      .some((n) => n.name === name)) {
      return;
    }
    if (zone.dataset.interface) {
      attach(name, zone.dataset.interface);
    } else if (attachment(name)) {
      detach(name);
    }
  });

  $("attachment-form").addEventListener("submit", saveAttachmentEditor);
  $("bond-form").addEventListener("submit", saveBondEditor);
  $("bond-mode").addEventListener("change", () => {
    const options = $("bond-options");
    const defaults = Object.values(model.bond_default_options);
    if (!options.value || defaults.includes(options.value)) {
      options.value = model.bond_default_options[$("bond-mode").value];
    }
  });
  $("bond-selected").addEventListener("click", () => openBondEditor(null));
  $("preview-button").addEventListener("click", preview);
  $("apply-button").addEventListener("click", apply);
  $("reset-button").addEventListener("click", () => {
    model = clone(original);
    synced = new Set();
    violations = [];
    selected.clear();
    changed();
  });
  $("opt-check").checked = model.options.check_connectivity;
  $("opt-timeout").value = model.options.connectivity_timeout;
  $("opt-save").checked = model.options.commit_on_success;
  render();
}());

/**
 * Building a console page's DOM: elements and SVG nodes from a tag, attributes and children, and
 * figures that carry their raw value in `data-value` (what the browser tests read). Browser code.
 *
 * @example
 * el("td", { class: "num", "data-value": 42, text: "42" });
 * svg("circle", { cx: 10, cy: 10, r: 3 });
 */

export type Attributes = Readonly<Record<string, string | number | undefined>>;

/** An HTML element; `text` sets its text, `class` its class name, the rest are attributes. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attributes = {},
  children: readonly Node[] = [],
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined) continue;
    if (name === "text") node.textContent = String(value);
    else if (name === "class") node.className = String(value);
    else node.setAttribute(name, String(value));
  }
  for (const child of children) node.appendChild(child);
  return node;
}

export function svg(tag: string, attrs: Attributes, text?: string): SVGElement {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag) as SVGElement;
  for (const [name, value] of Object.entries(attrs)) if (value !== undefined) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** The element with this id; a page that lacks it is a bug in the page. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (!node) throw new Error(`the page has no #${id}`);
  return node as T;
}

/** Show a figure: its raw value in `data-value` ("" when unknown), its text for people. */
export function setFigure(id: string, value: number | null, text: string): void {
  const node = byId(id);
  node.dataset.value = value === null ? "" : String(value);
  node.textContent = text;
}

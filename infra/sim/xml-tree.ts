/**
 * A strict reader of the XML bodies S3 takes (elements, text, the five named entities, character references, CDATA,
 * comments, one leading declaration): anything else, or anything not well-formed, reads as undefined, which S3
 * answers MalformedXML. Attributes (the namespace) are checked for form and dropped.
 */
export interface XmlElement {
  name: string;
  children: XmlElement[];
  /** The element's own text, entities decoded (blank for a container as S3's bodies write them). */
  text: string;
}

const TOKEN =
  /<!--(?:(?!--)[\s\S])*-->|<!\[CDATA\[([\s\S]*?)\]\]>|<(\/?)([A-Za-z_][\w.:-]*)((?:\s+[A-Za-z_][\w.:-]*\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*(\/?)>|([^<]+)/y;
const DECLARATION = /^\uFEFF?<\?xml\s[^?]*\?>/;
const ENTITY = /&(?:#(\d+)|#x([0-9a-fA-F]+)|(amp|lt|gt|quot|apos));/g;
const BARE_AMPERSAND = /&(?!(?:#\d+|#x[0-9a-fA-F]+|amp|lt|gt|quot|apos);)/;
const NAMED: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

/** Text or an attribute value as XML writes it. */
export const escapeXml = (text: string) => text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);

function decode(text: string): string | undefined {
  if (BARE_AMPERSAND.test(text)) return undefined;
  let bad = false;
  const decoded = text.replace(ENTITY, (_, decimal: string | undefined, hex: string | undefined, named: string | undefined) => {
    if (named) return NAMED[named]!;
    const point = decimal !== undefined ? Number(decimal) : Number.parseInt(hex!, 16);
    if (point === 0 || point > 0x10ffff) bad = true;
    return bad ? "" : String.fromCodePoint(point);
  });
  return bad ? undefined : decoded;
}

export function parseXml(source: string): XmlElement | undefined {
  const declaration = DECLARATION.exec(source);
  TOKEN.lastIndex = declaration ? declaration[0].length : 0;
  const open: XmlElement[] = [];
  let root: XmlElement | undefined;
  while (TOKEN.lastIndex < source.length) {
    const token = TOKEN.exec(source);
    if (!token) return undefined;
    const [whole, cdata, closing, name, attributes, selfClosing, text] = token;
    const parent = open.at(-1);
    if (text !== undefined || cdata !== undefined) {
      const content = cdata ?? decode(text!);
      if (content === undefined) return undefined;
      if (parent) parent.text += content;
      else if (content.trim() !== "" || cdata !== undefined) return undefined;
      continue;
    }
    if (whole.startsWith("<!--")) continue;
    if (closing) {
      if (selfClosing || attributes || parent?.name !== name) return undefined;
      open.pop();
      continue;
    }
    if (!parent && root) return undefined;
    const element: XmlElement = { name: name!, children: [], text: "" };
    if (parent) parent.children.push(element);
    else root = element;
    if (!selfClosing) open.push(element);
  }
  return open.length === 0 ? root : undefined;
}

"""Reference canonicalizer for tests/xml_c14n_differential.rs: libxml2 through lxml.

For every *.xml file in the directory given as the only argument, writes beside it:
  NAME.exc / NAME.inc         exclusive / inclusive C14N 1.0 (without comments) of the document
  NAME.sub<K>.exc             exclusive C14N of the K-th descendant element (K < 4), in document order
  NAME.err                    the parser's message, when libxml2 refuses the file

One known point where libxml2 departs from the recommendation is corrected here: it writes
namespace URIs unescaped (xmlns="urn:x?a=1&b=2"), whereas C14N 1.0 section 2.3 escapes them
like attribute values (as Apache Santuario does). Everything else is libxml2's output as is.
"""

import os
import re
import sys

from lxml import etree

# A start tag of canonical output: '<' not followed by '/' or '?', then unquoted characters
# or double-quoted values (canonical attribute values never hold a raw '"'), then '>'.
START_TAG = re.compile(rb'<(?![/?])(?:[^">]|"[^"]*")*>')
NS_DECL = re.compile(rb'( xmlns(?::[^=\s]+)?=")([^"]*)(")')


def escape_ns_value(m):
    value = m.group(2).replace(b"&", b"&amp;").replace(b"<", b"&lt;")
    return m.group(1) + value + m.group(3)


def correct(canonical):
    return START_TAG.sub(lambda t: NS_DECL.sub(escape_ns_value, t.group(0)), canonical)


def c14n(node, exclusive):
    out = etree.tostring(node, method="c14n", exclusive=exclusive, with_comments=False)
    return correct(out)


def main():
    directory = sys.argv[1]
    # Entity substitution stays on (the default): with it off, libxml2 keeps "&#38;" inside
    # stored namespace URIs. The inputs have no DTD, so only the predefined entities exist.
    parser = etree.XMLParser(no_network=True, load_dtd=False, huge_tree=False)
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".xml"):
            continue
        base = os.path.join(directory, name[:-4])
        try:
            tree = etree.parse(os.path.join(directory, name), parser)
        except etree.XMLSyntaxError as e:
            with open(base + ".err", "w") as f:
                f.write(str(e))
            continue
        with open(base + ".exc", "wb") as f:
            f.write(c14n(tree, True))
        with open(base + ".inc", "wb") as f:
            f.write(c14n(tree, False))
        elements = [e for e in tree.getroot().iter() if isinstance(e.tag, str)][1:5]
        for k, element in enumerate(elements):
            with open("%s.sub%d.exc" % (base, k), "wb") as f:
                f.write(c14n(element, True))


if __name__ == "__main__":
    main()

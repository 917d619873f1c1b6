"""libxml2's side of benches/xml.rs: exclusive C14N (without comments) + SHA-256 through lxml.

Usage: lxml_c14n_timing.py ITERATIONS ROUNDS NAME=FILE[#ID] ...
For each document, times (a) c14n + SHA-256 of an already parsed document and (b) parse +
c14n + SHA-256, each as the median over ROUNDS rounds of ITERATIONS calls, and prints one line
per measurement: NAME SCOPE MICROSECONDS_PER_OP. With #ID the element with that `id` is
canonicalized without its ds:Signature child (the enveloped-signature transform), which is
removed once, outside the timed loop, in (a) and inside it in (b).
"""

import hashlib
import statistics
import sys
import time

from lxml import etree

DS = "{http://www.w3.org/2000/09/xmldsig#}Signature"


def target(tree, element_id):
    if element_id is None:
        return tree
    node = tree.getroot().xpath("//*[@id=$i]", i=element_id)[0]
    for sig in node.findall(DS):
        node.remove(sig)
    return node


def per_op(fn, iterations, rounds):
    fn()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(iterations):
            fn()
        samples.append((time.perf_counter() - start) / iterations * 1e6)
    return statistics.median(samples)


def main():
    iterations, rounds = int(sys.argv[1]), int(sys.argv[2])
    for spec in sys.argv[3:]:
        name, path = spec.split("=", 1)
        path, _, element_id = path.partition("#")
        element_id = element_id or None
        data = open(path, "rb").read()
        parser = etree.XMLParser(no_network=True, load_dtd=False)
        tree = etree.ElementTree(etree.fromstring(data, parser))
        node = target(tree, element_id)

        def c14n_only():
            hashlib.sha256(etree.tostring(node, method="c14n", exclusive=True, with_comments=False)).digest()

        def parse_c14n():
            t = etree.ElementTree(etree.fromstring(data, parser))
            n = target(t, element_id)
            hashlib.sha256(etree.tostring(n, method="c14n", exclusive=True, with_comments=False)).digest()

        print(name, "c14n+sha256", "%.3f" % per_op(c14n_only, iterations, rounds), flush=True)
        print(name, "parse+c14n+sha256", "%.3f" % per_op(parse_c14n, iterations, rounds), flush=True)


if __name__ == "__main__":
    main()

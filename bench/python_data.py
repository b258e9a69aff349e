#!/usr/bin/env python3
"""The Python tools the course uses, on the inputs `cargo xtask bench data` prepared:
FastWARC (WARC reading), Resiliparse (HTML -> text, as the course's adapter), the official
fastText bindings (language ID) and datasketch (MinHash + LSH). One JSON line per measurement;
single-threaded, best of --reps. Missing tools are installed from PyPI on first use.
"""
import argparse
import json
import re
import time
import unicodedata


def best(reps, f):
    out, t_best = None, float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        out = f()
        t_best = min(t_best, time.perf_counter() - t)
    return t_best, out


def emit(what, seconds, count, nbytes=0, **extra):
    print(json.dumps({"what": what, "seconds": seconds, "count": count, "bytes": nbytes, **extra}), flush=True)


def normalize(text):
    text = unicodedata.normalize("NFD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"[^\w\s]", "", text)
    return " ".join(text.split())


PEERS = ["fastwarc", "resiliparse", "fasttext-wheel", "datasketch"]


def ensure_peers():
    """Installs the Python tools from PyPI when one is missing (the bench's only setup)."""
    try:
        import datasketch, fasttext, fastwarc, resiliparse  # noqa: F401
    except ImportError:
        import subprocess
        import sys

        print(f"installing {' '.join(PEERS)} from PyPI", file=sys.stderr, flush=True)
        subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", *PEERS])


def main():
    ensure_peers()
    ap = argparse.ArgumentParser()
    ap.add_argument("--warc", required=True)
    ap.add_argument("--pages", required=True, help="file with one HTML path per line")
    ap.add_argument("--texts", required=True, help="JSON lines of extracted texts (ours)")
    ap.add_argument("--lid", required=True)
    ap.add_argument("--extracted-out", help="write resiliparse's texts here (JSON lines)")
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()

    from fastwarc.warc import ArchiveIterator

    def read_warc():
        n = b = 0
        with open(a.warc, "rb") as f:
            for rec in ArchiveIterator(f):
                n += 1
                b += len(rec.reader.read())
        return n, b

    s, (n, b) = best(a.reps, read_warc)
    emit("warc", s, n, b, tool="fastwarc")

    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    pages = [open(p.strip(), "rb").read() for p in open(a.pages) if p.strip()]

    def extract():
        return [extract_plain_text(bytes_to_str(h, detect_encoding(h))) for h in pages]

    s, texts_ref = best(a.reps, extract)
    emit("extract", s, len(pages), sum(map(len, pages)), tool="resiliparse")
    if a.extracted_out:
        with open(a.extracted_out, "w") as f:
            for t in texts_ref:
                f.write(json.dumps(t) + "\n")

    texts = [json.loads(l) for l in open(a.texts)]
    import fasttext

    fasttext.FastText.eprint = lambda *args, **kw: None
    model = fasttext.load_model(a.lid)
    # model.predict() breaks on numpy 2 (np.array(copy=False)); the binding it wraps does not.
    s, _ = best(a.reps, lambda: [model.f.predict(t.replace("\n", " ") + "\n", 1, 0.0, "strict") for t in texts])
    emit("langid", s, len(texts), sum(len(t.encode()) for t in texts), tool="fasttext")

    from datasketch import MinHash, MinHashLSH

    def dedup():
        lsh = MinHashLSH(threshold=0.8, num_perm=100, params=(10, 10))
        sigs = []
        for i, t in enumerate(texts):
            words = normalize(t).split()
            m = MinHash(num_perm=100)
            m.update_batch([" ".join(words[j:j + 5]).encode() for j in range(max(1, len(words) - 4))])
            lsh.insert(str(i), m)
            sigs.append(m)
        return sum(len(lsh.query(m)) for m in sigs)

    s, _ = best(a.reps, dedup)
    emit("minhash", s, len(texts), sum(len(t.encode()) for t in texts), tool="datasketch")


if __name__ == "__main__":
    main()

"""Checks the source rules of STYLE.md; see check-source.sh for the list."""
import re
import subprocess
import sys
from pathlib import Path

BANNED = re.compile(r'\b(sscanf|strcpy|strcat|sprintf|vsprintf|atoi|atol|gets)\s*\(')
RAW_ALLOC = re.compile(r'(?<![\w.>])(malloc|calloc|realloc|free|strdup|strndup)\s*\(')
TODO = re.compile(r'\b(TODO|FIXME|XXX)\b')
FUNC_MAX = 70
FILE_MAX = 1500
RATCHET = Path('scripts/size-ratchet.txt')


def files():
    out = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard',
                          'src', 'tests', 'fuzz', 'include'], capture_output=True, text=True, check=True)
    return [Path(p) for p in out.stdout.split() if p.endswith(('.c', '.h')) and Path(p).exists()]


def strip_comments_and_strings(text):
    text = re.sub(r'/\*.*?\*/', lambda m: '\n' * m.group(0).count('\n'), text, flags=re.S)
    text = re.sub(r'//[^\n]*', '', text)
    return re.sub(r'"(\\.|[^"\\\n])*"', '""', text)


def functions(text):
    """Yields (name, first line, length) of top-level function bodies."""
    lines = text.split('\n')
    i = 0
    while i < len(lines):
        if lines[i] == '{' and i > 0:
            j = i - 1
            while j > 0 and '(' not in lines[j]:
                j -= 1
            m = re.search(r'(\w+)\s*\(', lines[j])
            k = i + 1
            while k < len(lines) and lines[k] != '}':
                k += 1
            if m:
                yield m.group(1), i + 1, k - i - 1
            i = k
        i += 1


def main():
    errors, lengths, long_funcs = [], [], set()
    for path in files():
        raw = path.read_text(errors='replace')
        code = strip_comments_and_strings(raw)
        for n, line in enumerate(code.split('\n'), 1):
            if BANNED.search(line):
                errors.append(f'{path}:{n}: banned call: {line.strip()}')
            if str(path).startswith('src/') and str(path) != 'src/common/alloc.c' and RAW_ALLOC.search(line):
                errors.append(f'{path}:{n}: raw allocation (use common/alloc.h): {line.strip()}')
        for n, line in enumerate(raw.split('\n'), 1):
            if TODO.search(line):
                errors.append(f'{path}:{n}: TODO/FIXME/XXX in committed code (open an issue note instead)')
        if path.name.startswith('gen_') or path.suffix != '.c' or not str(path).startswith('src/'):
            continue
        nlines = raw.count('\n')
        if nlines > FILE_MAX:
            errors.append(f'{path}: {nlines} lines (max {FILE_MAX}); split the module')
        for name, line, length in functions(code):
            lengths.append(length)
            if length > FUNC_MAX:
                long_funcs.add(f'{path}:{name}')
    allowed = {}
    if RATCHET.exists():
        for line in RATCHET.read_text().splitlines():
            if line.strip() and not line.startswith('#'):
                key, _, reason = line.partition(' ')
                allowed[key] = reason.strip()
    for f in sorted(long_funcs - set(allowed)):
        errors.append(f'{f}: function over {FUNC_MAX} lines; split it (or list it with a reason in {RATCHET})')
    for f in sorted(set(allowed) - long_funcs):
        errors.append(f'{RATCHET}: {f} is no longer over {FUNC_MAX} lines; remove its line (the ratchet only goes down)')
    lengths.sort()
    median = lengths[len(lengths) // 2] if lengths else 0
    print(f'check-source: {len(files())} files, {len(lengths)} functions in src/, median {median} lines, '
          f'{len(long_funcs)} over {FUNC_MAX}')
    for e in errors:
        print(e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())

"Committed notebook outputs: the pages show the method on real semantics, not the text-only stand-in."
import json
from pathlib import Path

NBS = Path(__file__).resolve().parent.parent/'nbs'
NO_SEMANTICS = ('no semantics store', 'using item text for every view', 'semantics: not generated')


def output_text(output: dict) -> str:
    "Everything a notebook output shows as text: stream text, tracebacks and the text/* data it carries."
    parts = [output.get('text', ''), '\n'.join(output.get('traceback', []))]
    parts += [v for k, v in output.get('data', {}).items() if k.startswith('text/')]
    return '\n'.join(''.join(p) if isinstance(p, list) else str(p) for p in parts)


def test_no_committed_output_runs_without_semantics():
    found = []
    for path in sorted(NBS.rglob('*.ipynb')):
        if '.ipynb_checkpoints' in path.parts:
            continue
        cells = json.loads(path.read_text(encoding='utf-8'))['cells']
        for n, cell in enumerate(cells):
            for out in cell.get('outputs', []):
                for line in output_text(out).splitlines():
                    if any(phrase in line for phrase in NO_SEMANTICS):
                        found.append(f'{path.relative_to(NBS.parent)}, cell {n}: {line.strip()[:160]}')
    assert not found, ('notebooks whose committed outputs ran without generated semantics (re-execute them with '
                       'the released stores):\n' + '\n'.join(found))

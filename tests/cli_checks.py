"""The bad-input contract of every command, shared by the tests: exit 2, one line, no traceback."""

from diffportrait3d.cli.main import main


def run_bad(capsys, args, *words):
    """Exit 2, one line on stderr that names every word, no traceback."""
    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)
    return err

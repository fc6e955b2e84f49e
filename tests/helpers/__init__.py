"""What the test suites share, one module per concern; fixtures stay in conftest files.

* `limits`     timeouts of waits and the stack settings the tests assert against
* `rest`       the REST client, users, tokens, the contract's error shape
* `sockets`    the ONE Socket.IO client wrapper (`ChatSocket`), its factory, raw Engine.IO
* `stack`      a whole stack on the launcher's own `stack.LocalStack`, or an external one
* `processes`  one more API/gateway process, private Redis/PostgreSQL servers
* `delivery`   the steady writer and the delivery report
* `metrics`    reading Prometheus pages
* `launcher`   `python -m stack` as a real process
* `browser`    Chromium and loopback forwarders
* `contract`   the schemathesis run's tally

Test modules import from here and never from each other or from a conftest
(`tests/unit/test_test_layout.py` checks that).
"""

"""Binding test of FitKartClient from Python against a real sync server on PostgreSQL.

`bash bindings/test.sh` starts the server and sets FITKART_TEST_SERVER_URL; the test is
skipped (not passed) when that variable is missing. The generated module and the built library
are loaded the same way as in test_store.py.
"""

import asyncio
import datetime
import os
import tempfile
import uuid

import pytest

from test_store import load_bindings

SERVER = os.environ.get("FITKART_TEST_SERVER_URL")
pytestmark = pytest.mark.skipif(not SERVER, reason="FITKART_TEST_SERVER_URL is not set")


@pytest.fixture(scope="module")
def ffi():
    module_dir = tempfile.mkdtemp(prefix="fitkart-py-")
    return load_bindings(module_dir)


def open_client(ffi, directory):
    config = ffi.ClientConfig(
        database_path=os.path.join(directory, "fitkart.db"),
        server_url=SERVER,
        platform="other",
        app_version="python-test",
    )
    return ffi.FitKartClient.open(config, ffi.InMemoryTokenStore())


def test_a_week_offline_then_sync_order_rejection_and_listeners(ffi, tmp_path):
    client = open_client(ffi, str(tmp_path))
    changes = []
    statuses = []

    class Changes(ffi.ChangeListener):
        def on_change(self, parts):
            changes.extend(parts)

    class Statuses(ffi.StatusListener):
        def on_status(self, status):
            statuses.append(status)

    class Broken(ffi.ChangeListener):
        def on_change(self, parts):
            raise RuntimeError("an app bug in a listener")

    client.add_change_listener(Changes())
    client.add_status_listener(Statuses())
    client.add_change_listener(Broken())

    email = f"py-{uuid.uuid4().hex[:12]}@example.com"
    profile = asyncio.run(client.register(email, "python-binding-test", "Py Walker"))
    assert profile.email == email
    assert client.current_user().email == email

    # A week up to yesterday, recorded offline in one batch.
    today = datetime.datetime.now(datetime.timezone.utc).date()
    reports = []
    for days_ago in range(7, 0, -1):
        day = today - datetime.timedelta(days=days_ago)
        at = datetime.datetime.combine(day, datetime.time(21, 0), tzinfo=datetime.timezone.utc)
        reports.append(ffi.StepReport(date=day.isoformat(), source="phone", steps=15500, recorded_at=at))
    assert client.record_steps_batch(reports) == 7
    assert client.pending_changes() == 1
    assert ffi.DataPart.STEPS in changes, "the broken listener did not stop the others"

    report = asyncio.run(client.sync())
    assert report.complete
    assert report.applied == 1
    assert client.pending_changes() == 0
    wallet = client.wallet()
    assert wallet.available_coins >= 7 * 155, wallet
    assert any(isinstance(s, ffi.SyncStatus.SYNCING) for s in statuses)
    assert isinstance(statuses[-1], ffi.SyncStatus.IDLE)
    assert [t.kind for t in client.coin_history(100, None)].count("step_reward") == 7
    assert any(a.unlocked_at is not None for a in client.achievements())

    # An order that fits is held at once, then confirmed.
    products = sorted(client.products(), key=lambda p: p.coin_price)
    cheapest = products[0]
    assert cheapest.coin_price <= wallet.available_coins
    address = ffi.ShippingAddress(name="Py Walker", line1="1 Main St", city="Springfield",
                                  postal_code="12345", country="US")
    queued = client.place_order([ffi.OrderLine(product_id=cheapest.id, quantity=1)], address)
    assert client.wallet().pending_hold_coins == cheapest.coin_price
    assert client.orders()[0].sync == ffi.OrderSync.PENDING_PLACEMENT
    asyncio.run(client.sync())
    order = client.orders()[0]
    assert order.client_order_id == queued.client_order_id
    assert order.sync == ffi.OrderSync.SYNCED and order.order_code

    # One the wallet cannot cover is refused at the next sync: the reason is listed.
    priciest = products[-1]
    client.place_order([ffi.OrderLine(product_id=priciest.id, quantity=1)], address)
    report = asyncio.run(client.sync())
    assert [(r.kind, r.code) for r in report.rejected] == [("place_order", "insufficient_coins")]
    assert client.rejections()[0].code == "insufficient_coins"
    assert client.wallet().pending_hold_coins == 0

    # Errors arrive as typed exceptions.
    with pytest.raises(ffi.FitKartError.InvalidInput) as invalid:
        client.record_steps("2026-02-30", "phone", 10, datetime.datetime.now(datetime.timezone.utc))
    assert invalid.value.field == "date"
    client.record_steps(today.isoformat(), "phone", 100, datetime.datetime.now(datetime.timezone.utc))
    with pytest.raises(ffi.FitKartError.PendingChanges) as pending:
        asyncio.run(client.logout(False))
    assert pending.value.count == 1
    asyncio.run(client.logout(True))
    assert client.current_user() is None

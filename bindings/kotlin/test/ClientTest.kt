// Binding test of FitKartClient from Kotlin on the JVM, against a real sync server on
// PostgreSQL (bindings/test.sh starts one and sets FITKART_TEST_SERVER_URL). Every native
// object is released with use {} / close(). Exits non-zero on the first failed check.

import com.fitkart.sync.ChangeListener
import com.fitkart.sync.ClientConfig
import com.fitkart.sync.DataPart
import com.fitkart.sync.FitKartClient
import com.fitkart.sync.FitKartException
import com.fitkart.sync.InMemoryTokenStore
import com.fitkart.sync.OrderLine
import com.fitkart.sync.OrderSync
import com.fitkart.sync.ShippingAddress
import com.fitkart.sync.StatusListener
import com.fitkart.sync.StepReport
import com.fitkart.sync.SyncStatus
import java.nio.file.Files
import java.time.Instant
import java.time.LocalDate
import java.time.ZoneOffset
import java.util.Collections
import java.util.UUID
import kotlinx.coroutines.runBlocking
import kotlin.system.exitProcess

var checks = 0

fun check(condition: Boolean, what: String) {
    if (!condition) {
        System.err.println("FAILED: $what")
        exitProcess(1)
    }
    checks += 1
}

class Changes : ChangeListener {
    val parts: MutableList<DataPart> = Collections.synchronizedList(mutableListOf())
    override fun onChange(parts: List<DataPart>) {
        this.parts.addAll(parts)
    }
}

class Statuses : StatusListener {
    val seen: MutableList<SyncStatus> = Collections.synchronizedList(mutableListOf())
    override fun onStatus(status: SyncStatus) {
        seen.add(status)
    }
}

class Throwing : ChangeListener {
    override fun onChange(parts: List<DataPart>) {
        throw IllegalStateException("an app bug in a listener")
    }
}

fun main() {
    val server = System.getenv("FITKART_TEST_SERVER_URL")
        ?: run { System.err.println("FITKART_TEST_SERVER_URL is not set"); exitProcess(2) }
    val dir = Files.createTempDirectory("fitkart-kt-")
    val config = ClientConfig(
        databasePath = dir.resolve("fitkart.db").toString(),
        serverUrl = server,
        platform = "android",
        appVersion = "kotlin-test",
    )
    InMemoryTokenStore().use { tokens ->
        FitKartClient.open(config, tokens).use { client ->
            val changes = Changes()
            val statuses = Statuses()
            client.addChangeListener(Throwing())
            client.addChangeListener(changes)
            client.addStatusListener(statuses)

            val email = "kt-${UUID.randomUUID().toString().take(12)}@example.com"
            val profile = runBlocking { client.register(email, "kotlin-binding-test", "Kt Walker") }
            check(profile.email == email, "registered as $email")

            // A week up to yesterday, offline.
            val today = LocalDate.now(ZoneOffset.UTC)
            val week = (7 downTo 1).map { daysAgo ->
                val day = today.minusDays(daysAgo.toLong())
                StepReport(day.toString(), "health_connect", 15_500L, day.atTime(21, 0).toInstant(ZoneOffset.UTC))
            }
            check(client.recordStepsBatch(week) == 7UL, "a week recorded")
            check(client.pendingChanges() == 1UL, "one queued change")
            check(changes.parts.contains(DataPart.STEPS), "a change notification despite a throwing listener")

            val report = runBlocking { client.sync() }
            check(report.complete && report.applied == 1UL, "synced: $report")
            val wallet = client.wallet()
            check(wallet.availableCoins >= 7 * 155, "coins in the wallet: $wallet")
            check(statuses.seen.any { it is SyncStatus.Syncing }, "progress in the status listener")
            check(statuses.seen.last() == SyncStatus.Idle, "idle after the sync")

            val products = client.products().sortedBy { it.coinPrice }
            val address = ShippingAddress(
                name = "Kt Walker", line1 = "1 Main St", city = "Springfield",
                postalCode = "12345", country = "US",
            )
            val queued = client.placeOrder(listOf(OrderLine(products.first().id, 1)), address)
            check(client.wallet().pendingHoldCoins == products.first().coinPrice, "the order's coins are held")
            check(client.orders().first().sync == OrderSync.PENDING_PLACEMENT, "the order shows as pending")
            runBlocking { client.sync() }
            val order = client.orders().first()
            check(order.clientOrderId == queued.clientOrderId && order.sync == OrderSync.SYNCED, "confirmed: $order")

            client.placeOrder(listOf(OrderLine(products.last().id, 1)), address)
            val refused = runBlocking { client.sync() }
            check(refused.rejected.map { it.code } == listOf("insufficient_coins"), "refused: ${refused.rejected}")
            check(client.rejections().first().code == "insufficient_coins", "the refusal is listed")

            try {
                client.recordSteps("2026-02-30", "health_connect", 10L, Instant.now())
                check(false, "an impossible date is refused")
            } catch (e: FitKartException.InvalidInput) {
                check(e.field == "date", "the field is named: ${e.field}")
            }
            client.recordSteps(today.toString(), "health_connect", 100L, Instant.now())
            try {
                runBlocking { client.logout(false) }
                check(false, "logout with a pending change is refused")
            } catch (e: FitKartException.PendingChanges) {
                check(e.count == 1UL, "one pending change")
            }
            runBlocking { client.logout(true) }
            check(client.currentUser() == null, "signed out")
        }
    }
    println("$checks passed, 0 failed")
}

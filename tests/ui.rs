//! The web UI in a real browser: headless Chromium driven over WebDriver (chromedriver).
//! `.ci/test` installs Debian's `chromium` and `chromium-driver`; without them these tests
//! fail with a message saying so.

mod common;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::{eventually, free_port};
use common::{get_json, token_with, TestNode};
use fantoccini::{Client, ClientBuilder, Locator};
use pizza_orders::domain::Timestamp;
use serde_json::{json, Value};

/// chromedriver on a random loopback port, stopped when dropped together with every Chromium
/// it started (they share its process group), so a test that fails before closing its browser
/// leaves none running.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Self {
        let binary = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("chromedriver is not installed: run `bash .ci/test` (it installs Debian's chromium and chromium-driver)");
        // A port from free_port() can be taken by a node binding port 0 in a test running
        // beside this one before chromedriver binds it; chromedriver then exits at once. Such a
        // start is tried again on another port.
        for _ in 0..3 {
            let port = free_port();
            let mut child = Command::new(binary)
                .process_group(0)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver");
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Self { child, port };
                }
                if child.try_wait().ok().flatten().is_some() {
                    break; // exited: most likely the port was taken; try another
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("chromedriver did not listen within 20 s");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("chromedriver exited at start three times (are ports free on 127.0.0.1?)");
    }

    async fn browser(&self, width: u32, height: u32) -> Client {
        self.browser_in(width, height, "en-US").await
    }

    /// A browser whose languages are `language` (navigator.languages, Accept-Language).
    async fn browser_in(&self, width: u32, height: u32, language: &str) -> Client {
        let profile = tempfile::tempdir().expect("profile dir").keep();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                         "--no-first-run", "--disable-background-networking", "--disable-component-update",
                         "--disable-sync", format!("--window-size={width},{height}"),
                         format!("--lang={language}"), format!("--accept-lang={language}"),
                         format!("--user-data-dir={}", profile.display())]
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("open a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = i32::try_from(self.child.id()).ok().and_then(rustix::process::Pid::from_raw);
        if let Some(group) = group {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const WAIT: Duration = Duration::from_secs(15);

async fn visible(b: &Client, css: &str) {
    b.wait().at_most(WAIT).for_element(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css} did not appear: {e}"));
}

async fn text(b: &Client, css: &str) -> String {
    b.find(Locator::Css(css)).await.unwrap().text().await.unwrap()
}

async fn wait_text(b: &Client, css: &str, wanted: &str) -> String {
    eventually(WAIT, &format!("{css} to contain {wanted:?}"), || async {
        let t = b.find(Locator::Css(css)).await.ok()?.text().await.ok()?;
        t.contains(wanted).then_some(t)
    })
    .await
}

/// A screen the tests reach: kept as a picture, and checked for accessibility.
async fn screenshot(b: &Client, name: &str) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), b.screenshot().await.unwrap()).unwrap();
    accessible(b, name).await;
}

/// axe-core, the version `.ci/test` installs (`PIZZA_AXE_JS`, or target/web-tools), run on the
/// screen as it is: no violation of WCAG 2.0/2.1 A or AA. WebDriver's script runs outside the
/// page's Content-Security-Policy, which stays in force for the page itself.
async fn accessible(b: &Client, screen: &str) {
    // Read once per test binary (half a megabyte), not once per screen.
    static AXE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let axe = AXE.get_or_init(|| {
        let path = std::env::var_os("PIZZA_AXE_JS").map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/web-tools/node_modules/axe-core/axe.min.js")
        });
        std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "axe-core is not at {} ({e}): run `bash .ci/test` (it installs it with npm), or set PIZZA_AXE_JS",
                path.display()
            )
        })
    });
    let script = format!(
        "{axe}\nreturn window.axe.run(document, {{ runOnly: {{ type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] }} }})\n\
         .then(r => r.violations.map(v => ({{ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ')) }})));"
    );
    let violations = b.execute(&script, vec![]).await.unwrap_or_else(|e| panic!("axe-core on {screen}: {e}"));
    let list = violations.as_array().cloned().unwrap_or_default();
    assert!(
        list.is_empty(),
        "axe-core on screen {screen}: {} violation(s) of WCAG 2.1 AA:\n{}",
        list.len(),
        list.iter()
            .map(|v| format!("{} ({}): {} at {}", v["id"], v["impact"], v["help"], v["nodes"]))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

async fn sign_in(b: &Client, base: &str, user: &str) {
    b.goto(base).await.unwrap();
    visible(b, "#sign-in:not([hidden]) #login-name").await;
    b.find(Locator::Css("#login-name")).await.unwrap().send_keys(user).await.unwrap();
    b.find(Locator::Css("#login-form button")).await.unwrap().click().await.unwrap();
    visible(b, "#order:not([hidden])").await;
}

/// Pick a day (UTC date `days` ahead) and the slot starting at `start` (or the first open one).
async fn choose_slot(b: &Client, days: i64, start: Option<&str>) -> String {
    let day = Timestamp::from_millis(Timestamp::now().millis() + days * 86_400_000).to_rfc3339()[..10].to_owned();
    b.execute(
        "const d = document.getElementById('day'); d.value = arguments[0]; d.dispatchEvent(new Event('change'));",
        vec![json!(day)],
    )
    .await
    .unwrap();
    // Only the list drawn for that day (the one shown before may still be on screen).
    let css = match start {
        Some(s) => format!("#slots[data-day='{day}'] button[data-start='{s}']:not([disabled])"),
        None => format!("#slots[data-day='{day}'] button:not([disabled])"),
    };
    visible(b, &css).await;
    // The list is redrawn when availability changes (the live stream): a button found just
    // before a redraw is stale, so it is looked up again.
    for attempt in 0.. {
        let button = b.find(Locator::Css(&css)).await.unwrap();
        let picked = button.attr("data-start").await.unwrap().unwrap();
        match button.click().await {
            Ok(()) => return picked,
            Err(e) if attempt < 3 => {
                eprintln!("clicking {css} again after: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot click {css}: {e}"),
        }
    }
    unreachable!("the loop returns or panics")
}

/// Click `css`, looking it up again if the page redrew it between the lookup and the click
/// (the kitchen page redraws its tickets on every poll).
async fn click_fresh(b: &Client, css: &str) {
    for attempt in 0.. {
        let found = b.find(Locator::Css(css)).await;
        match found {
            Ok(element) => match element.click().await {
                Ok(()) => return,
                Err(e) if attempt < 5 => eprintln!("clicking {css} again after: {e}"),
                Err(e) => panic!("cannot click {css}: {e}"),
            },
            Err(e) if attempt < 5 => eprintln!("looking for {css} again after: {e}"),
            Err(e) => panic!("{css} is gone: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fill(b: &Client, address: &str) {
    let field = b.find(Locator::Css("#address")).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(address).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_places_changes_cancels_and_orders_again() {
    let node = TestNode::start_with(&["auth.dev_login=true"]);
    let driver = Driver::start();
    let b = driver.browser(1000, 1100).await;
    sign_in(&b, &node.base, "alice").await;
    screenshot(&b, "1-order-form").await;
    choose_slot(&b, 2, None).await;
    fill(&b, "1 Main St").await;
    b.find(Locator::Css("input[value=large]")).await.unwrap().click().await.unwrap();
    b.find(Locator::Css("input[value=mushroom]")).await.unwrap().click().await.unwrap();
    // Locale-independent: "€14.20", "14,20 €" … all have the digits 1420.
    let digits = |t: String| t.chars().filter(char::is_ascii_digit).collect::<String>();
    assert_eq!(digits(text(&b, "#price").await), "1420", "live price: {}", text(&b, "#price").await);
    screenshot(&b, "2-order-form-filled").await;
    b.find(Locator::Css("#submit-order")).await.unwrap().click().await.unwrap();
    visible(&b, "#current:not([hidden])").await;
    wait_text(&b, "#current-details", "1 Main St").await;
    assert!(digits(text(&b, "#current-details").await).contains("1420"));
    screenshot(&b, "3-current-order").await;

    b.find(Locator::Css("#edit-order")).await.unwrap().click().await.unwrap();
    visible(&b, "#order:not([hidden])").await;
    fill(&b, "2 Side St").await;
    b.find(Locator::Css("#submit-order")).await.unwrap().click().await.unwrap();
    wait_text(&b, "#current-details", "2 Side St").await;

    b.find(Locator::Css("#cancel-order")).await.unwrap().click().await.unwrap();
    b.accept_alert().await.unwrap();
    visible(&b, "#history:not([hidden])").await;
    wait_text(&b, "#history-list", "cancelled").await;
    visible(&b, "#current[hidden]").await;

    choose_slot(&b, 3, None).await;
    fill(&b, "3 New Rd").await;
    b.find(Locator::Css("#submit-order")).await.unwrap().click().await.unwrap();
    wait_text(&b, "#current-details", "3 New Rd").await;
    b.set_window_size(390, 844).await.unwrap();
    screenshot(&b, "4-phone").await;
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_customers_race_for_the_last_place_and_the_loser_gets_it_from_the_waitlist() {
    let node = TestNode::start_with(&["auth.dev_login=true", "slots.capacity=1"]);
    let driver = Driver::start();
    let (bob, carol) = (driver.browser(1000, 1100).await, driver.browser(1000, 1100).await);
    sign_in(&bob, &node.base, "bob").await;
    sign_in(&carol, &node.base, "carol").await;
    let start = choose_slot(&bob, 2, None).await;
    choose_slot(&carol, 2, Some(&start)).await;
    fill(&bob, "Bob's House").await;
    fill(&carol, "Carol's House").await;
    let submit_bob = async { bob.find(Locator::Css("#submit-order")).await.unwrap().click().await.unwrap() };
    let submit_carol = async { carol.find(Locator::Css("#submit-order")).await.unwrap().click().await.unwrap() };
    tokio::join!(submit_bob, submit_carol);

    // Two browsers and a node on two shared cores: a full test run can take a while here.
    let outcome = |b: Client| async move {
        eventually(WAIT * 2, "a visible outcome", || async {
            if b.find(Locator::Css("#current:not([hidden])")).await.is_ok() {
                return Some(("won", b.clone()));
            }
            let err = b.find(Locator::Css("#err-delivery_slot:not([hidden])")).await.ok()?;
            err.text().await.ok()?.contains("full").then_some(("lost", b.clone()))
        })
        .await
    };
    let results = [outcome(bob.clone()).await, outcome(carol.clone()).await];
    let winners = results.iter().filter(|(r, _)| *r == "won").count();
    assert_eq!(winners, 1, "exactly one of two customers gets the last place");
    let loser = &results.iter().find(|(r, _)| *r == "lost").expect("one loser").1;
    let winner = &results.iter().find(|(r, _)| *r == "won").expect("one winner").1;
    // The answer itself names the nearest slots with room, and offers a place in line.
    // The loser's page may have heard (live) that the slot filled before its click landed: the
    // note that appears then moves the form, and a click aimed at the old spot can miss the
    // button (CI, once). The page keeps the slot picked so that sending anyway gets the race's
    // answer: send it, as the customer would. A request still on its way is not sent twice
    // (the page ignores a second click while one is out).
    let alternatives = "#alternatives:not([hidden]) #alternative-slots button";
    if loser.wait().at_most(WAIT / 3).for_element(Locator::Css(alternatives)).await.is_err() {
        wait_text(loser, "#err-delivery_slot", "full").await;
        loser.find(Locator::Css("#submit-order")).await.unwrap().click().await.unwrap();
    }
    visible(loser, alternatives).await;
    visible(loser, "#join-line:not([hidden]) #join-waitlist").await;
    screenshot(loser, "5-slot-full-alternatives").await;
    loser.find(Locator::Css("#join-waitlist")).await.unwrap().click().await.unwrap();
    wait_text(loser, "#waitlist:not([hidden]) #waitlist-details", "Number 1 in line").await;
    screenshot(loser, "5b-waitlist").await;
    // The winner cancels: the place goes to the first in line, whose order is then placed.
    winner.find(Locator::Css("#cancel-order")).await.unwrap().click().await.unwrap();
    winner.accept_alert().await.unwrap();
    visible(winner, "#current[hidden]").await;
    loser.refresh().await.unwrap();
    visible(loser, "#current:not([hidden])").await;
    visible(loser, "#waitlist[hidden]").await;
    bob.close().await.unwrap();
    carol.close().await.unwrap();
    // Through the API as well: the slot is full again, with the customer from the line.
    let taken: Value = get_json(&node.url("/v1/slots"), &[("from", start.as_str())]).await;
    assert_eq!(taken["slots"][0]["remaining"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_leads_back_to_sign_in() {
    let node = TestNode::start_with(&["auth.dev_login=true"]);
    let driver = Driver::start();
    let b = driver.browser(1000, 900).await;
    b.goto(&node.base).await.unwrap();
    visible(&b, "#sign-in:not([hidden])").await;
    let expired = token_with("dave", false, 60, Timestamp::from_millis(Timestamp::now().millis() - 7_200_000));
    b.execute("sessionStorage.setItem('token', arguments[0]);", vec![json!(expired)]).await.unwrap();
    b.refresh().await.unwrap();
    visible(&b, "#sign-in:not([hidden])").await;
    wait_text(&b, "#alert", "expired").await;
    screenshot(&b, "0-sign-in-expired").await;
    b.close().await.unwrap();
}

/// A Chrome DevTools Protocol command sent through chromedriver (`goog/cdp/execute`).
#[derive(Debug)]
struct Cdp(Value);

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/goog/cdp/execute", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.0.to_string()))
    }
}

/// Let the page at `origin` read the location, and make the browser be at (lat, lon).
async fn be_at(b: &Client, origin: &str, lat: f64, lon: f64) {
    let grant =
        json!({ "cmd": "Browser.grantPermissions", "params": { "origin": origin, "permissions": ["geolocation"] } });
    b.issue_cmd(Cdp(grant)).await.expect("grant geolocation");
    let at = json!({ "cmd": "Emulation.setGeolocationOverride", "params": { "latitude": lat, "longitude": lon, "accuracy": 10 } });
    b.issue_cmd(Cdp(at)).await.expect("set geolocation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_says_where_and_sees_the_store_and_its_local_times() {
    let dir = tempfile::tempdir().unwrap();
    let chain = common::chain_file(dir.path());
    let node = TestNode::start_with(&["auth.dev_login=true", &format!("catalog_file={chain}")]);
    let driver = Driver::start();
    let b = driver.browser(1000, 1200).await;
    sign_in(&b, &node.base, "erin").await;
    visible(&b, "#where:not([hidden]) #postcode").await;
    visible(&b, "#when[hidden]").await;

    // Nobody delivers to that postcode: said plainly, next to the postcode.
    b.find(Locator::Css("#postcode")).await.unwrap().send_keys("99999").await.unwrap();
    b.find(Locator::Css("#find-store")).await.unwrap().click().await.unwrap();
    wait_text(&b, "#err-postcode", "don't deliver there").await;

    // The browser's location, outside every area: the nearest store and its distance.
    be_at(&b, &node.base, 52.60, 13.40).await;
    b.find(Locator::Css("#postcode")).await.unwrap().clear().await.unwrap();
    b.find(Locator::Css("#use-location")).await.unwrap().click().await.unwrap();
    let outside = wait_text(&b, "#err-postcode", "nearest store is Berlin Mitte").await;
    assert!(outside.contains("km away"), "{outside}");
    // Inside Mitte's area: the page names the store and its time zone.
    be_at(&b, &node.base, 52.53, 13.40).await;
    b.find(Locator::Css("#use-location")).await.unwrap().click().await.unwrap();
    wait_text(&b, "#store-info", "Berlin Mitte").await;
    wait_text(&b, "#tz-note", "Europe/Berlin").await;
    screenshot(&b, "6-where-to-deliver").await;

    // By postcode, the other side of the world: slots on Auckland's clock (from midnight there).
    let postcode = b.find(Locator::Css("#postcode")).await.unwrap();
    postcode.send_keys("1010").await.unwrap();
    b.find(Locator::Css("#find-store")).await.unwrap().click().await.unwrap();
    wait_text(&b, "#store-info", "Auckland Central").await;
    wait_text(&b, "#tz-note", "Pacific/Auckland").await;
    choose_slot(&b, 3, None).await;
    let first = text(&b, "#slots button").await;
    assert!(first.starts_with("00:00") || first.starts_with("12:00"), "local time on the button: {first}");
    fill(&b, "1 Queen Street").await;
    b.find(Locator::Css("#submit-order")).await.unwrap().click().await.unwrap();
    visible(&b, "#current:not([hidden])").await;
    let details = wait_text(&b, "#current-details", "Auckland Central").await;
    assert!(details.contains("Pacific/Auckland"), "{details}");
    screenshot(&b, "7-order-at-a-far-store").await;
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_in_soho_pays_in_pounds_with_the_vat_shown() {
    // The demo chain as shipped: London sells from its own menu, in GBP with 20 % VAT included.
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/config/catalog.toml");
    let node = TestNode::start_with(&["auth.dev_login=true", &format!("catalog_file={demo}")]);
    let driver = Driver::start();
    let b = driver.browser(1000, 1200).await;
    sign_in(&b, &node.base, "grace").await;
    b.find(Locator::Css("#postcode")).await.unwrap().send_keys("W1D 3QF").await.unwrap();
    b.find(Locator::Css("#find-store")).await.unwrap().click().await.unwrap();
    wait_text(&b, "#store-info", "London Soho").await;
    // The menu is London's: pounds, and the medium (chosen by default) at £10.95 with the VAT in it.
    wait_text(&b, "#price", "£10.95").await;
    wait_text(&b, "#tax-note", "incl. 20% tax").await;
    let sizes = text(&b, "#sizes").await;
    assert!(sizes.contains("£8.50") && !sizes.contains("€"), "{sizes}");
    choose_slot(&b, 3, None).await;
    fill(&b, "12 Old Compton Street").await;
    screenshot(&b, "15-london-in-pounds").await;
    b.find(Locator::Css("#submit-order")).await.unwrap().click().await.unwrap();
    visible(&b, "#current:not([hidden])").await;
    // 1095 × 20 / 120 = 182.5, rounded half to even: £1.82 of VAT.
    let details = wait_text(&b, "#current-details", "£10.95").await;
    assert!(details.contains("£1.82 (20%, included)"), "{details}");
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_day_picker_opens_on_tonight_and_every_missing_field_is_shown_at_once() {
    let node = TestNode::start_with(&["auth.dev_login=true"]);
    let driver = Driver::start();
    let b = driver.browser(1000, 1100).await;
    sign_in(&b, &node.base, "frank").await;
    // The test store is open around the clock on UTC with a 30-minute cutoff: today still has
    // a slot unless it is past 23:00 UTC.
    let now = Timestamp::now();
    let half_hour = 1_800_000;
    let first = Timestamp::from_millis((now.millis() + half_hour + half_hour - 1) / half_hour * half_hour);
    let today = now.to_rfc3339()[..10].to_owned();
    let expected = first.to_rfc3339()[..10].to_owned();
    let words = if expected == today { "Today" } else { "Tomorrow" };
    let day = eventually(WAIT, "the day picker to open", || async {
        let value = b.find(Locator::Css("#day")).await.ok()?.prop("value").await.ok()??;
        (!value.is_empty()).then_some(value)
    })
    .await;
    assert_eq!(day, expected, "the picker opens on the first day with a slot");
    wait_text(&b, "#day-words", words).await;
    wait_text(&b, "#open-days", &words.to_lowercase()).await;
    visible(&b, "#slots button:not([disabled])").await;

    // Nothing filled in: every problem at once, and no request is sent.
    b.find(Locator::Css("#submit-order")).await.unwrap().click().await.unwrap();
    let address = wait_text(&b, "#err-address", "address").await;
    let slot = wait_text(&b, "#err-delivery_slot", "delivery time").await;
    assert!(!address.is_empty() && !slot.is_empty());
    screenshot(&b, "8-every-error-at-once").await;
    let metrics = reqwest::get(node.url("/metrics")).await.unwrap().text().await.unwrap();
    let posted = metrics.lines().any(|l| {
        l.starts_with("pizza_orders_http_requests_total")
            && l.contains("method=\"POST\"")
            && l.contains("route=\"/v1/orders\"")
    });
    assert!(!posted, "the form sent a request although it was incomplete");
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_filled_through_one_node_shows_full_on_another_nodes_page_without_a_reload() {
    let cluster = common::cluster::TestCluster::start(2, &["auth.dev_login=true", "slots.capacity=1"]).await;
    let driver = Driver::start();
    let (dora, emil) = (driver.browser(1000, 1100).await, driver.browser(1000, 1100).await);
    sign_in(&dora, &cluster.url(0, "/"), "dora").await;
    sign_in(&emil, &cluster.url(1, "/"), "emil").await;
    let start = choose_slot(&dora, 3, None).await;
    choose_slot(&emil, 3, Some(&start)).await;
    let watched = format!("#slots button[data-start='{start}']");
    wait_text(&emil, &watched, "1 left").await;
    fill(&dora, "Dora's Door").await;
    dora.find(Locator::Css("#submit-order")).await.unwrap().click().await.unwrap();
    visible(&dora, "#current:not([hidden])").await;
    // Emil's page, served by the other node, shows the slot full and disabled by itself.
    visible(&emil, &format!("{watched}[disabled]")).await;
    wait_text(&emil, &watched, "full").await;
    // Emil had picked that slot: the page says so at once and keeps it picked, so sending the
    // order anyway gets what losing the race gets (the nearest free times, a place in line), not
    // a bare "choose a delivery time".
    wait_text(&emil, "#err-delivery_slot:not([hidden])", "just been fully booked").await;
    // ...and a screen reader hears it (the polite status line).
    wait_text(&emil, "#status", "just been fully booked").await;
    screenshot(&emil, "9-live-slot-full").await;
    fill(&emil, "Emil's Door").await;
    emil.find(Locator::Css("#submit-order")).await.unwrap().click().await.unwrap();
    wait_text(&emil, "#err-delivery_slot:not([hidden])", "fully booked").await;
    visible(&emil, "#alternatives:not([hidden]) #alternative-slots button").await;
    visible(&emil, "#join-line:not([hidden]) #join-waitlist").await;
    dora.close().await.unwrap();
    emil.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kitchen_moves_an_order_out_for_delivery_and_the_customers_page_follows_without_a_reload() {
    let node = TestNode::start_with(&["auth.dev_login=true"]);
    let driver = Driver::start();
    let (customer, kitchen) = (driver.browser(900, 1100).await, driver.browser(1200, 900).await);
    sign_in(&customer, &node.url("/"), "frida").await;
    choose_slot(&customer, 1, None).await;
    fill(&customer, "Frida's Door 3").await;
    customer.find(Locator::Css("#submit-order")).await.unwrap().click().await.unwrap();
    visible(&customer, "#current:not([hidden]) #tracker li.done[data-status='placed']").await;

    let keys = pizza_orders::auth::TokenKeys::new(
        &pizza_orders::config::TokenSecret::parse(common::SECRET.as_bytes()).unwrap(),
    );
    let staff = keys
        .mint_as(
            &pizza_orders::domain::UserId::parse("ana").unwrap(),
            false,
            Some(&pizza_orders::domain::StoreId::parse("main").unwrap()),
            Duration::from_secs(3600),
            Timestamp::now(),
        )
        .unwrap();
    kitchen.goto(&node.url("/kitchen/?hours=60")).await.unwrap();
    visible(&kitchen, "#sign-in:not([hidden]) #token-input").await;
    kitchen.find(Locator::Css("#token-input")).await.unwrap().send_keys(&staff).await.unwrap();
    kitchen.find(Locator::Css("#token-form button")).await.unwrap().click().await.unwrap();
    wait_text(&kitchen, ".ticket", "Frida's Door 3").await;
    screenshot(&kitchen, "10-kitchen").await;
    // One tap per step; the page shows each step before the next button appears.
    for (button, reached) in
        [("Start preparing", "preparing"), ("Baked", "baked"), ("Out for delivery", "out_for_delivery")]
    {
        let css = ".ticket button.step:not(.danger)";
        wait_text(&kitchen, css, button).await;
        click_fresh(&kitchen, css).await;
        visible(&kitchen, &format!(".ticket.status-{reached}")).await;
    }
    visible(&kitchen, ".ticket.status-out_for_delivery button.danger").await;
    screenshot(&kitchen, "11-kitchen-out-for-delivery").await;

    // The customer's page, never reloaded, shows the order on its way and no longer offers
    // to change or cancel it.
    visible(&customer, "#tracker li.done[data-status='out_for_delivery']").await;
    let tracker = text(&customer, "#tracker").await;
    assert!(
        tracker.contains("Being made") && tracker.contains("Baked") && tracker.contains("Out for delivery"),
        "{tracker}"
    );
    let buttons = customer.find(Locator::Css("#cancel-order")).await.unwrap();
    assert!(!buttons.is_displayed().await.unwrap(), "cancel is not offered once the kitchen has the order");
    screenshot(&customer, "12-customer-tracker").await;
    customer.close().await.unwrap();
    kitchen.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operations_dashboard_charts_the_day_the_funnel_and_the_hot_slots() {
    let node = TestNode::start_with(&["auth.dev_login=true", "analytics.flush_ms=200"]);
    let driver = Driver::start();
    let (customer, admin) = (driver.browser(900, 1100).await, driver.browser(1280, 1600).await);
    sign_in(&customer, &node.url("/"), "gina").await;
    let start = choose_slot(&customer, 1, None).await;
    fill(&customer, "Gina's Gate 9").await;
    customer.find(Locator::Css("#submit-order")).await.unwrap().click().await.unwrap();
    visible(&customer, "#current:not([hidden])").await;
    // The page's beacons reach the replicated figures within a flush or two.
    let admin_token = token_with("ops", true, 3600, Timestamp::now());
    eventually(WAIT, "the order counted", || async {
        let report: Value = common::client()
            .get(node.url("/admin/analytics"))
            .bearer_auth(&admin_token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let today = report["days"].as_array()?.last()?.clone();
        (today["funnel"]["order_placed"] == 1 && today["views"].as_u64()? >= 1).then_some(())
    })
    .await;

    admin.goto(&node.url("/admin/")).await.unwrap();
    visible(&admin, "#sign-in:not([hidden]) #token-input").await;
    admin.find(Locator::Css("#token-input")).await.unwrap().send_keys(&admin_token).await.unwrap();
    admin.find(Locator::Css("#token-form button")).await.unwrap().click().await.unwrap();
    visible(&admin, "#traffic-chart svg polyline[data-series='views']").await;
    wait_text(&admin, "#funnel li[data-step='order_placed']", "1 placed an order").await;
    wait_text(&admin, "#cluster-summary", "Leader: node 1").await;
    let hot = format!("#heatmap .cell[data-start='{start}'][data-orders='1']");
    visible(&admin, &hot).await;
    // That day's money, per currency: one order, the medium at €10.50 (no tax on this menu).
    wait_text(&admin, "#revenue tr[data-currency='EUR']", "€10.50").await;
    let cells = admin
        .execute("return [...document.querySelectorAll(\"#revenue tbody tr td\")].map((td) => td.textContent);", vec![])
        .await
        .unwrap();
    assert_eq!(cells, json!(["EUR", "1", "€10.50", "€0.00", "€10.50"]), "one line, EUR only");
    screenshot(&admin, "13-dashboard").await;
    customer.close().await.unwrap();
    admin.close().await.unwrap();
}

/// A browser that speaks German gets the pages in German: words, money and dates; the switch
/// changes the language in place, without a reload, and the choice is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_german_browser_gets_german_pages_and_the_switch_is_remembered() {
    let node = TestNode::start_with(&["auth.dev_login=true"]);
    let driver = Driver::start();
    let b = driver.browser_in(1000, 1100, "de-DE").await;
    b.goto(&node.base).await.unwrap();
    visible(&b, "#sign-in:not([hidden]) #login-name").await;
    assert_eq!(text(&b, "h1").await, "Pizza-Bestellungen");
    assert_eq!(text(&b, "#sign-in-title").await, "Anmelden");
    let lang = b.execute("return document.documentElement.lang;", vec![]).await.unwrap();
    assert_eq!(lang, json!("de"));
    sign_in(&b, &node.base, "greta").await;
    // Sizes and toppings in German, prices with the German decimal comma and the euro sign after.
    let sizes = wait_text(&b, "#sizes", "groß").await;
    assert!(sizes.contains(",") && sizes.contains("€"), "{sizes}");
    assert!(text(&b, "#toppings").await.contains("Champignons"));
    // Every missing field, in German, at once.
    b.find(Locator::Css("#submit-order")).await.unwrap().click().await.unwrap();
    wait_text(&b, "#err-address", "Geben Sie die Lieferadresse ein.").await;
    wait_text(&b, "#err-delivery_slot", "Wählen Sie eine Lieferzeit.").await;
    screenshot(&b, "14-german").await;
    // Place an order: the tracker and the details speak German, the price in euros.
    choose_slot(&b, 2, None).await;
    fill(&b, "Invalidenstraße 1").await;
    b.find(Locator::Css("#submit-order")).await.unwrap().click().await.unwrap();
    visible(&b, "#current:not([hidden])").await;
    let details = wait_text(&b, "#current-details", "Invalidenstraße 1").await;
    assert!(details.contains("Lieferung") && details.contains("aufgegeben"), "{details}");
    assert!(text(&b, "#tracker").await.contains("Aufgegeben"));
    // The switch: English at once, without a reload (a mark on the window survives only if the
    // page is not loaded again), what the page wrote itself included; kept after a reload.
    b.execute(
        "window.notReloaded = true; const s = document.getElementById('lang'); s.value = 'en'; s.dispatchEvent(new Event('change'));",
        vec![],
    )
    .await
    .unwrap();
    wait_text(&b, "h1", "Pizza orders").await;
    wait_text(&b, "#current-details", "Delivery").await;
    // The order form (hidden while there is an order) is drawn again in English too.
    let sizes = b.execute("return document.getElementById('sizes').textContent;", vec![]).await.unwrap();
    assert!(sizes.as_str().unwrap().contains("large"), "{sizes}");
    assert_eq!(b.execute("return window.notReloaded === true;", vec![]).await.unwrap(), json!(true));
    assert_eq!(b.execute("return document.documentElement.lang;", vec![]).await.unwrap(), json!("en"));
    b.refresh().await.unwrap();
    wait_text(&b, "h1", "Pizza orders").await;
    wait_text(&b, "#current-details", "Delivery").await;
    b.close().await.unwrap();
}

/// The node's `[auth]` for the test identity provider (tests/oidc-provider): keys and the pages'
/// endpoints by discovery, the pages' public client `pizza-web`.
fn provider_auth(issuer: &str) -> String {
    format!(
        "[auth]\njwt_secret = \"{}\"\n[auth.oidc]\nname = \"idp\"\nissuer = \"{issuer}\"\naudience = \"pizza-orders\"\nclient_id = \"pizza-web\"\n",
        common::SECRET
    )
}

/// At the provider's sign-in page (its own, on its own origin): sign in as `login`.
async fn sign_in_at_provider(b: &Client, issuer: &str, login: &str) {
    visible(b, "#provider-sign-in:not([hidden]) #provider-button").await;
    b.find(Locator::Css("#provider-button")).await.unwrap().click().await.unwrap();
    if b.wait().at_most(WAIT).for_element(Locator::Css("form#login-form #login")).await.is_err() {
        let at = b.current_url().await.unwrap();
        let source = b.source().await.unwrap_or_default();
        panic!("the provider's sign-in page did not appear; at {at}:\n{}", &source[..source.len().min(2000)]);
    }
    let at = b.current_url().await.unwrap();
    assert!(at.as_str().starts_with(issuer), "the sign-in page is the provider's: {at}");
    b.find(Locator::Css("#login")).await.unwrap().send_keys(login).await.unwrap();
    // The provider's page is kept as a picture only: its accessibility is the provider's.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("provider-login-{login}.png")), b.screenshot().await.unwrap()).unwrap();
    b.find(Locator::Css("#password")).await.unwrap().send_keys("any password").await.unwrap();
    b.find(Locator::Css("#sign-in")).await.unwrap().click().await.unwrap();
}

/// Sign-in through a real, certified OpenID provider (`oidc-provider`): authorization code
/// with PKCE from the customer's page, the token in memory only, an order placed, the token
/// renewed before it expires, a reload signed in again silently, and sign-out at the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_signs_in_at_the_identity_provider_orders_and_signs_out_there() {
    // Access tokens of 8 s: the page renews each 2 s before its end.
    let provider = common::provider::OidcProvider::start(&[("ACCESS_TTL", "8")]);
    let node = TestNode::start_with_auth(&provider_auth(&provider.issuer), &[]);
    let driver = Driver::start();
    let b = driver.browser(1000, 1100).await;
    b.goto(&node.base).await.unwrap();
    visible(&b, "#provider-sign-in:not([hidden])").await;
    wait_text(&b, "#provider-note", "127.0.0.1").await;
    screenshot(&b, "20-provider-sign-in").await;
    sign_in_at_provider(&b, &provider.issuer, "alice").await;
    visible(&b, "#order:not([hidden])").await;
    wait_text(&b, "#who-name", "alice").await;
    let url = b.current_url().await.unwrap();
    assert!(url.query().is_none(), "the code and state left the address bar: {url}");
    // The token is nowhere in the browser's storage (only in the page's memory).
    let stored = b
        .execute("return JSON.stringify([Object.values(localStorage), Object.values(sessionStorage)]);", vec![])
        .await
        .unwrap();
    assert!(!stored.as_str().unwrap().contains("eyJ"), "no token in storage: {stored}");

    choose_slot(&b, 2, None).await;
    fill(&b, "7 Provider Lane").await;
    b.find(Locator::Css("#submit-order")).await.unwrap().click().await.unwrap();
    visible(&b, "#current:not([hidden])").await;
    wait_text(&b, "#current-details", "7 Provider Lane").await;
    screenshot(&b, "21-provider-ordered").await;

    // Renewed before it expires (the provider logs each grant), and the new token works: the
    // order changed with it.
    eventually(Duration::from_secs(20), "the page's refresh of its token", || async {
        provider.log().contains("GRANT refresh_token").then_some(())
    })
    .await;
    b.find(Locator::Css("#edit-order")).await.unwrap().click().await.unwrap();
    visible(&b, "#order:not([hidden])").await;
    fill(&b, "8 Provider Lane").await;
    b.find(Locator::Css("#submit-order")).await.unwrap().click().await.unwrap();
    wait_text(&b, "#current-details", "8 Provider Lane").await;

    // A reload: the provider's session still stands, so the page is signed in again without
    // its sign-in form (a silent round trip).
    b.refresh().await.unwrap();
    wait_text(&b, "#current-details", "8 Provider Lane").await;
    wait_text(&b, "#who-name", "alice").await;

    // Sign-out ends the session at the provider too: signing in again asks for the login.
    b.find(Locator::Css("#sign-out")).await.unwrap().click().await.unwrap();
    eventually(WAIT, "back from the provider's sign-out", || async {
        let at = b.current_url().await.ok()?;
        at.as_str().starts_with(&node.base).then_some(())
    })
    .await;
    visible(&b, "#sign-in:not([hidden]) #provider-button").await;
    b.find(Locator::Css("#provider-button")).await.unwrap().click().await.unwrap();
    visible(&b, "form#login-form #login").await;
    b.close().await.unwrap();
}

/// Staff and admin by the provider's roles claim: a staff user opens the kitchen of their store
/// (and not the dashboard), an admin the dashboard, a customer neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_roles_open_the_kitchen_of_the_staffs_store_and_the_dashboard_for_admins() {
    let provider = common::provider::OidcProvider::start(&[]);
    let node = TestNode::start_with_auth(&provider_auth(&provider.issuer), &[]);
    let placed = common::create(&node, "gus", &common::order_body(&common::slot(1, 20))).await;
    assert_eq!(placed.status(), reqwest::StatusCode::CREATED);
    let driver = Driver::start();

    let staff = driver.browser(1200, 900).await;
    staff.goto(&node.url("/kitchen/?hours=60")).await.unwrap();
    sign_in_at_provider(&staff, &provider.issuer, "staff-main").await;
    wait_text(&staff, ".ticket", "1 Main St").await;
    // The page's own query came back from the round trip: the order is 10 to 34 h ahead, by the
    // hour the test runs, so without `hours=60` the default 12 h missed it most of the day.
    let at = staff.current_url().await.unwrap();
    assert_eq!(at.query(), Some("hours=60"), "{at}");
    screenshot(&staff, "22-provider-kitchen").await;
    // The same person opens the dashboard in this tab: the page asks the provider silently,
    // is signed in at once, and the node refuses a staff user there.
    staff.goto(&node.url("/admin/")).await.unwrap();
    // Two round trips through the provider before the answer: twice the usual wait.
    let deadline = std::time::Instant::now() + 2 * WAIT;
    loop {
        let alert = staff.find(Locator::Css("#alert")).await.ok();
        let shown = match alert {
            Some(a) => a.text().await.unwrap_or_default(),
            None => String::new(),
        };
        if shown.contains("dmin") {
            break;
        }
        if std::time::Instant::now() > deadline {
            let at = staff.current_url().await.unwrap();
            let err = staff.find(Locator::Css("#err-provider")).await.ok();
            let err = match err {
                Some(e) => e.text().await.unwrap_or_default(),
                None => String::new(),
            };
            let log = provider.log();
            let tail = &log[log.len().saturating_sub(3000)..];
            panic!("no refusal on the dashboard; at {at}, alert {shown:?}, provider error {err:?}; the provider's log ends:\n{tail}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    visible(&staff, "#sign-in:not([hidden]) #provider-button").await;
    visible(&staff, "#panels[hidden]").await;
    staff.close().await.unwrap();

    let admin = driver.browser(1200, 1000).await;
    admin.goto(&node.url("/admin/")).await.unwrap();
    sign_in_at_provider(&admin, &provider.issuer, "admin").await;
    visible(&admin, "#panels:not([hidden])").await;
    admin.close().await.unwrap();

    let customer = driver.browser(1200, 900).await;
    customer.goto(&node.url("/kitchen/")).await.unwrap();
    sign_in_at_provider(&customer, &provider.issuer, "gus").await;
    wait_text(&customer, "#alert", "taff").await;
    visible(&customer, "#sign-in:not([hidden])").await;
    customer.close().await.unwrap();
}

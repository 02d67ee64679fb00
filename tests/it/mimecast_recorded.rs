//! The Mimecast source against answers Mimecast really sent (tests/fixtures/mimecast, see the
//! README there): the parser and the rendered metrics must give the vendor's own figures, and
//! the simulator must answer in the same shapes.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;

use awareness_sim::mimecast::{self, MimecastOptions, SimAuth};
use awareness_sim::replay::{self, Recorded, Replay};
use awareness_sim::{Population, SimServer};
use serde_json::{json, Value};

use common::*;

const CAMPAIGNS: &str = "/api/awareness-training/campaign/get-campaigns";
const CAMPAIGN_USERS: &str = "/api/awareness-training/campaign/get-user-data";

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/mimecast/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

/// The four recorded campaigns and the get-user-data fixture of each.
const RECORDED: [(&str, &str); 4] = [
    ("J1 Test Campaign", "campaign-get-user-data-kids.json"),
    ("Another Campaign", "campaign-get-user-data-another.json"),
    ("J1 HIPAA Campaign", "campaign-get-user-data-hipaa.json"),
    ("J1 Info Protection", "campaign-get-user-data-info.json"),
];

fn recorded_campaigns() -> Vec<Value> {
    fixture_json("campaign-get-campaigns.json")["data"][0]["campaigns"]
        .as_array()
        .unwrap()
        .clone()
}

/// A replay server answering campaign/get-campaigns and campaign/get-user-data as recorded.
async fn recorded_tenant() -> (SimServer, Arc<Replay>) {
    let replay = Arc::new(Replay::default());
    replay.route(
        CAMPAIGNS,
        vec![Recorded::json(200, fixture("campaign-get-campaigns.json"))],
    );
    for c in recorded_campaigns() {
        let name = c["name"].as_str().unwrap();
        let file = RECORDED.iter().find(|(n, _)| *n == name).unwrap().1;
        replay.route_id(
            CAMPAIGN_USERS,
            c["id"].as_str().unwrap(),
            vec![Recorded::json(200, fixture(file))],
        );
    }
    let server = replay::start(replay.clone()).await.unwrap();
    (server, replay)
}

fn hmac_config(server: &SimServer, endpoints: &str) -> String {
    let auth = SimAuth::demo_hmac();
    format!(
        "{}endpoints = [{endpoints}]\n",
        mimecast::account_block(server, "j1", &auth)
    )
}

#[tokio::test]
async fn recorded_campaigns_give_the_vendors_own_figures() {
    let (server, replay) = recorded_tenant().await;
    let config = parse(&hmac_config(&server, "\"campaigns\""));
    let (outcome, _) = poll_once(&config).await;
    let got = samples(&text_of(&outcome));
    let campaigns = recorded_campaigns();
    assert_eq!(campaigns.len(), 4);
    for c in &campaigns {
        let id = c["id"].as_str().unwrap();
        let name = c["name"].as_str().unwrap();
        let l = [("account", "j1"), ("campaign_id", id), ("campaign", name)];
        let sent = c["numSent"].as_f64().unwrap();
        let completed = c["numCompleted"].as_f64().unwrap();
        let percent_correct = c["percentCorrect"].as_f64().unwrap();
        assert_eq!(
            got[&series("awareness_mimecast_campaign_users", &l)],
            sent,
            "{name}: numSent"
        );
        assert_eq!(
            got[&series("awareness_mimecast_campaign_completed_users", &l)],
            completed,
            "{name}: numCompleted"
        );
        let ratio = got.get(&series("awareness_mimecast_campaign_correct_ratio", &l));
        if completed > 0.0 {
            let ratio = ratio.unwrap_or_else(|| panic!("{name}: no correct ratio"));
            assert!(
                (ratio * 100.0 - percent_correct).abs() < 1e-9,
                "{name}: {ratio} vs percentCorrect {percent_correct}"
            );
        } else {
            // Nobody answered: the vendor says 0 %, we publish no ratio at all.
            assert!(ratio.is_none(), "{name}: ratio without answers");
        }
        let module = c["title"]["title"].as_str().unwrap();
        let m = [("account", "j1"), ("module", module)];
        assert_eq!(got[&series("awareness_mimecast_module_assigned", &m)], sent);
        assert_eq!(
            got[&series("awareness_mimecast_module_watched", &m)],
            completed
        );
    }
    // The exact vendor figures, written out once.
    let by_name: BTreeMap<&str, (f64, f64)> = campaigns
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                (
                    c["numSent"].as_f64().unwrap(),
                    c["numCompleted"].as_f64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(by_name["J1 Test Campaign"], (2.0, 1.0));
    assert_eq!(by_name["Another Campaign"], (3.0, 1.0));
    assert_eq!(by_name["J1 HIPAA Campaign"], (3.0, 0.0));
    assert_eq!(by_name["J1 Info Protection"], (3.0, 0.0));
    // One get-user-data request per campaign, with its id, as the production clients send it.
    let asked: Vec<String> = replay
        .requests()
        .iter()
        .filter(|(p, _)| p == CAMPAIGN_USERS)
        .map(|(_, b)| b["data"][0]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(asked.len(), 4);
}

const SUMMARY: &str = "/api/awareness-training/company/get-performance-summary";
const SUMMARY_FIXTURE: &str = "company-get-performance-summary-catalogue.json";

/// company/get-performance-summary as the API 2.0 catalogue documents it: the company totals are
/// the sums over its department entries, on both APIs.
#[tokio::test]
async fn the_documented_performance_summary_gives_company_totals() {
    let replay = Arc::new(Replay::default());
    replay.route(SUMMARY, vec![Recorded::json(200, fixture(SUMMARY_FIXTURE))]);
    let server = replay::start(replay.clone()).await.unwrap();
    let hmac = hmac_config(&server, "\"performance-summary\"");
    let oauth2 = format!(
        "{}endpoints = [\"performance-summary\"]\n",
        mimecast::account_block(&server, "j1", &SimAuth::demo_oauth2())
    );
    replay.route(
        "/oauth/token",
        vec![Recorded::json(
            200,
            r#"{"access_token":"t","expires_in":1800}"#,
        )],
    );
    for text in [hmac, oauth2] {
        let (outcome, _) = poll_once(&parse(&text)).await;
        let got = samples(&text_of(&outcome));
        let a = ("account", "j1");
        let entries = fixture_json(SUMMARY_FIXTURE)["data"][0]["departmentCompletionStats"]
            .as_array()
            .unwrap()
            .clone();
        let sum = |key: &str| {
            entries
                .iter()
                .map(|e| e[key].as_f64().unwrap())
                .sum::<f64>()
        };
        for (name, key, want) in [
            (
                "awareness_mimecast_participating_users",
                "numParticipating",
                25.0,
            ),
            ("awareness_mimecast_videos_sent", "numVideosSent", 150.0),
            (
                "awareness_mimecast_videos_not_watched",
                "numVideosNotWatched",
                21.0,
            ),
        ] {
            assert_eq!(sum(key), want);
            assert_eq!(got.get(&series(name, &[a])), Some(&want), "{name}");
        }
        for (incorrect, want) in [("0", 13.0), ("1", 5.0), ("2", 4.0), ("3", 2.0), ("4+", 1.0)] {
            let s = series(
                "awareness_mimecast_users_by_incorrect_answers",
                &[a, ("incorrect", incorrect)],
            );
            assert_eq!(got.get(&s), Some(&want), "{s}");
        }
    }
    let asked = replay.requests();
    assert_eq!(asked.iter().filter(|(p, _)| p == SUMMARY).count(), 2);
}

// ---------------------------------------------------------------- simulator shapes

/// The structure of a JSON value: objects by key (question keys `forQuestionN` folded into
/// one), arrays as the merged shape of all their elements, scalars by type.
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    Object(BTreeMap<String, Shape>),
    Array(Option<Box<Shape>>),
    Scalar(&'static str),
}

fn shape(v: &Value) -> Shape {
    match v {
        Value::Object(o) => Shape::Object(
            o.iter()
                .map(|(k, v)| {
                    let k = if k.starts_with("forQuestion") {
                        "forQuestionN".to_string()
                    } else {
                        k.clone()
                    };
                    (k, shape(v))
                })
                .collect(),
        ),
        Value::Array(a) => Shape::Array(a.iter().map(shape).reduce(merge).map(Box::new)),
        Value::String(_) => Shape::Scalar("string"),
        Value::Number(_) => Shape::Scalar("number"),
        Value::Bool(_) => Shape::Scalar("bool"),
        Value::Null => Shape::Scalar("null"),
    }
}

fn merge(a: Shape, b: Shape) -> Shape {
    match (a, b) {
        (Shape::Object(mut x), Shape::Object(y)) => {
            for (k, v) in y {
                let merged = match x.remove(&k) {
                    Some(old) => merge(old, v),
                    None => v,
                };
                x.insert(k, merged);
            }
            Shape::Object(x)
        }
        (Shape::Array(x), Shape::Array(y)) => Shape::Array(match (x, y) {
            (Some(x), Some(y)) => Some(Box::new(merge(*x, *y))),
            (x, y) => x.or(y),
        }),
        (x, y) if x == y => x,
        _ => Shape::Scalar("mixed"),
    }
}

async fn sim_post(server: &SimServer, token: &str, path: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", server.base_url()))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn sim_token(server: &SimServer) -> String {
    let SimAuth::OAuth2 {
        client_id,
        client_secret,
    } = SimAuth::demo_oauth2()
    else {
        unreachable!()
    };
    let v: Value = reqwest::Client::new()
        .post(format!("{}/oauth/token", server.base_url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id.as_str()),
            ("client_secret", client_secret.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_simulator_answers_in_the_recorded_shapes() {
    let pop = Arc::new(Population::generate(11, 60));
    let server = mimecast::start(pop.clone(), MimecastOptions::default())
        .await
        .unwrap();
    let token = sim_token(&server).await;

    let (status, campaigns) = sim_post(&server, &token, CAMPAIGNS, json!({"data": []})).await;
    assert_eq!(status, 200);
    assert_eq!(
        shape(&campaigns),
        shape(&fixture_json("campaign-get-campaigns.json")),
        "campaign/get-campaigns"
    );

    let id = campaigns["data"][0]["campaigns"][0]["id"].as_str().unwrap();
    let (_, users) = sim_post(
        &server,
        &token,
        CAMPAIGN_USERS,
        json!({"meta": {"pagination": {"pageSize": 500}}, "data": [{"id": id}]}),
    )
    .await;
    let recorded = RECORDED
        .iter()
        .map(|(_, f)| shape(&fixture_json(f)))
        .reduce(merge)
        .unwrap();
    assert_eq!(shape(&users), recorded, "campaign/get-user-data");

    let (status, summary) = sim_post(&server, &token, SUMMARY, json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(
        shape(&summary),
        shape(&fixture_json(SUMMARY_FIXTURE)),
        "company/get-performance-summary"
    );
}

#[tokio::test]
async fn the_simulator_sends_err_developer_key_as_mimecast_does() {
    let pop = Arc::new(Population::generate(11, 5));
    let auth = SimAuth::demo_hmac();
    let server = mimecast::start(
        pop,
        MimecastOptions {
            auth: auth.clone(),
            ..MimecastOptions::default()
        },
    )
    .await
    .unwrap();
    let path = "/api/awareness-training/company/get-performance-details";
    let mut req = reqwest::Client::new().post(format!("{}{path}", server.base_url()));
    for (k, v) in auth.hmac_headers(path) {
        let v = if k == "x-mc-app-id" {
            "INVALID".to_string()
        } else {
            v
        };
        req = req.header(k, v);
    }
    let r = req.body("{\"data\":[]}").send().await.unwrap();
    assert_eq!(r.status(), 200, "err_developer_key comes with HTTP 200");
    let body: Value = r.json().await.unwrap();
    let recorded = fixture_json("err-developer-key-http200.json");
    assert_eq!(
        body["meta"], recorded["meta"],
        "meta.status 200 as recorded"
    );
    assert_eq!(shape(&body), shape(&recorded));
    assert_eq!(
        body["fail"][0]["errors"][0]["code"],
        recorded["fail"][0]["errors"][0]["code"]
    );
}

// ---------------------------------------------------------------- API 1.0 hosts

fn hmac_text(extra: &str) -> String {
    format!(
        "[[mimecast]]\naccount = \"a\"\nauth = \"hmac\"\napp_id = \"i\"\napp_key = \"k\"\naccess_key = \"a\"\nsecret_key = \"c2VjcmV0\"\n{extra}"
    )
}

fn mimecast_base_url(text: &str) -> Result<String, String> {
    match awareness_exporter::registry::loader().parse(text, "t.toml") {
        Ok(c) => {
            match c.sources[0]
                .get::<awareness_exporter::testing::sources::mimecast::MimecastConfig>()
            {
                Some(m) => Ok(m.base_url.clone()),
                None => unreachable!(),
            }
        }
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn hmac_needs_a_region_or_base_url_and_regions_map_to_api_1_hosts() {
    let e = mimecast_base_url(&hmac_text("")).unwrap_err();
    assert!(e.contains("mimecast[0].region"), "{e}");
    assert!(e.contains("base_url"), "{e}");
    for (region, host) in [
        ("eu", "https://eu-api.mimecast.com"),
        ("de", "https://de-api.mimecast.com"),
        ("us", "https://us-api.mimecast.com"),
        ("usb", "https://usb-api.mimecast.com"),
        ("ca", "https://ca-api.mimecast.com"),
        ("za", "https://za-api.mimecast.com"),
        ("au", "https://au-api.mimecast.com"),
        ("jer", "https://je-api.mimecast.com"),
        ("offshore", "https://je-api.mimecast.com"),
        ("EU", "https://eu-api.mimecast.com"),
    ] {
        assert_eq!(
            mimecast_base_url(&hmac_text(&format!("region = \"{region}\"\n"))).unwrap(),
            host
        );
    }
    assert_eq!(
        mimecast_base_url(&hmac_text("base_url = \"https://x.example/\"\n")).unwrap(),
        "https://x.example"
    );
    let e = mimecast_base_url(&hmac_text("region = \"mars\"\n")).unwrap_err();
    assert!(
        e.contains("mimecast[0].region") && e.contains("known: eu, de") && !e.contains("mars"),
        "{e}"
    );
    let e = mimecast_base_url(&hmac_text(
        "region = \"eu\"\nbase_url = \"https://x.example\"\n",
    ))
    .unwrap_err();
    assert!(e.contains("mimecast[0].region"), "{e}");
    // API 2.0 keeps its global default and has no API 1.0 regions.
    let oauth = "[[mimecast]]\naccount = \"a\"\nclient_id = \"c\"\nclient_secret = \"s\"\n";
    assert_eq!(
        mimecast_base_url(oauth).unwrap(),
        "https://api.services.mimecast.com"
    );
    let e = mimecast_base_url(&format!("{oauth}region = \"eu\"\n")).unwrap_err();
    assert!(e.contains("mimecast[0].region"), "{e}");
}

/// Phishing answers: campaign rows with the fields Mimecast's endpoint page documents (and no
/// `numReported`, which it does not), recipients with the fields Azure Sentinel's
/// Awareness_User_Data table stores from real tenants.
#[tokio::test]
async fn the_simulator_phishing_answers_have_the_documented_fields() {
    let pop = Arc::new(Population::generate(11, 60));
    let server = mimecast::start(pop.clone(), MimecastOptions::default())
        .await
        .unwrap();
    let token = sim_token(&server).await;
    let (_, campaigns) = sim_post(
        &server,
        &token,
        "/api/awareness-training/phishing/campaign/get-campaign",
        json!({"data": []}),
    )
    .await;
    let rows = campaigns["data"].as_array().unwrap();
    assert!(!rows.is_empty());
    for r in rows {
        for k in [
            "id",
            "name",
            "launchDate",
            "numSent",
            "numOpened",
            "numClicked",
            "numSubmitted",
        ] {
            assert!(r.get(k).is_some(), "{k} missing in {r}");
        }
        assert!(
            r.get("numReported").is_none(),
            "undocumented numReported: {r}"
        );
    }
    let id = rows[0]["id"].as_str().unwrap();
    let (_, users) = sim_post(
        &server,
        &token,
        "/api/awareness-training/phishing/campaign/get-user-data",
        json!({"meta": {"pagination": {"pageSize": 500}}, "data": [{"id": id}]}),
    )
    .await;
    let Shape::Array(Some(data)) = shape(&users["data"]) else {
        panic!("no data[]: {users}")
    };
    let Shape::Object(entry) = *data else {
        panic!()
    };
    let Some(Shape::Array(Some(items))) = entry.get("items") else {
        panic!("no data[0].items: {users}")
    };
    let Shape::Object(fields) = &**items else {
        panic!()
    };
    for k in [
        "name",
        "email",
        "templateName",
        "department",
        "status",
        "numCampaignsSent",
        "numCampaignsClicked",
        "numTrainingModulesAssigned",
        "numCorrectAnswers",
        "numIncorrectAnswers",
        "userState",
        "timeScheduled",
        "clickedIp",
        "reactionTime",
        "timeOpened",
        "timeClicked",
        "timeReported",
    ] {
        assert!(fields.contains_key(k), "{k} missing in get-user-data items");
    }
}

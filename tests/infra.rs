//! The Terraform in `infra/` and the code agree. No `terraform` binary can
//! run here, so the HCL is parsed with a real parser (hcl-rs) and checked
//! against the code's own constants: the functions' handler and runtime,
//! the environment variable they read, the queue wiring of the triggers,
//! the deployment record's fields, and the IAM policies against the object
//! keys each function really reads and writes. `checkov` then scans it.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use hcl::{Body, Expression};
use mandel_core::{TileId, pyramid};
use mandel_e2e::terraform::{attr, block, infra_dir, local, nested, terraform, text};
use mandel_pipeline::{
    BUCKET_ENV, DEPLOYMENT_KEY, Deployment, Failed, Fleet, FunctionLimits, JobId,
};

fn object_keys(expr: &Expression) -> BTreeSet<String> {
    let object = match expr {
        Expression::Object(o) => o,
        Expression::FuncCall(f) => match &f.args[..] {
            [Expression::Object(o)] => o,
            other => panic!("expected one object argument, got {other:?}"),
        },
        other => panic!("expected an object, got {other}"),
    };
    object
        .keys()
        .map(|k| k.to_string().trim_matches('"').to_string())
        .collect()
}

fn strings(expr: &Expression) -> Vec<String> {
    match expr {
        Expression::Array(items) => items.iter().map(|i| i.to_string()).collect(),
        other => vec![other.to_string()],
    }
}

#[test]
fn functions_match_the_binaries_and_the_environment_they_read() {
    let tf = terraform();
    let function = block(&tf, "resource", &["aws_lambda_function", "function"]).body();
    assert_eq!(text(function, "runtime"), "\"provided.al2023\"");
    // cargo-lambda names the executable in the zip `bootstrap`.
    assert_eq!(text(function, "handler"), "\"bootstrap\"");
    assert_eq!(
        text(function, "filename"),
        "\"${local.zip_dir}/${each.value.binary}/bootstrap.zip\""
    );
    let env = attr(nested(function, "environment"), "variables");
    assert_eq!(object_keys(env), BTreeSet::from([BUCKET_ENV.to_string()]));
    assert_eq!(
        text(nested(function, "logging_config"), "log_format"),
        "\"JSON\""
    );

    // The zips are the workspace's two function binaries.
    let functions = local(&tf, "functions").to_string();
    for (key, binary, manifest) in [
        ("worker", "mandel-worker", "functions/worker/Cargo.toml"),
        ("stitch", "mandel-stitch", "functions/stitch/Cargo.toml"),
    ] {
        assert!(
            functions.contains(&format!("binary = \"{binary}\"")),
            "{key}: {functions}"
        );
        let cargo = std::fs::read_to_string(infra_dir().join("..").join(manifest)).unwrap();
        assert!(
            cargo.contains(&format!("name = \"{binary}\"")),
            "{manifest}"
        );
    }
}

#[test]
fn triggers_wire_each_queue_to_its_function_with_partial_batch_failures() {
    let tf = terraform();
    for (mapping, queue, function) in [
        ("tiles", "tiles", "worker"),
        ("explore", "explore", "worker"),
        ("stitch", "stitch", "stitch"),
    ] {
        let m = block(
            &tf,
            "resource",
            &["aws_lambda_event_source_mapping", mapping],
        )
        .body();
        assert_eq!(
            text(m, "event_source_arn"),
            format!("aws_sqs_queue.{queue}.arn")
        );
        assert_eq!(
            text(m, "function_name"),
            format!("aws_lambda_function.function[\"{function}\"].arn")
        );
        assert_eq!(
            strings(attr(m, "function_response_types")),
            ["\"ReportBatchItemFailures\""]
        );
        attr(nested(m, "scaling_config"), "maximum_concurrency");

        // Visibility 6x the consumer's timeout; a DLQ after several tries.
        let q = block(&tf, "resource", &["aws_sqs_queue", queue]).body();
        assert_eq!(
            text(q, "visibility_timeout_seconds"),
            format!("6 * var.{function}_timeout_seconds")
        );
        let redrive = attr(q, "redrive_policy");
        assert_eq!(
            object_keys(redrive),
            BTreeSet::from(["deadLetterTargetArn".into(), "maxReceiveCount".into()])
        );
        assert!(
            redrive
                .to_string()
                .contains(&format!("aws_sqs_queue.{queue}_dlq.arn"))
        );
    }
    let max_receive = block(&tf, "variable", &["max_receive_count"]).body();
    let default = text(max_receive, "default").parse::<u32>().unwrap();
    assert!(default >= 3);
    // The README states the production value; it must be this one.
    let readme = std::fs::read_to_string(infra_dir().join("../README.md")).unwrap();
    let stated = format!("`max_receive_count` {default} ");
    assert!(
        readme.matches(&stated).count() >= 2,
        "README does not state {stated:?} in the deploy list and under Guarantees"
    );
}

#[test]
fn deployment_record_has_exactly_the_fields_the_code_reads() {
    let tf = terraform();
    let record = block(&tf, "resource", &["aws_s3_object", "deployment"]).body();
    assert_eq!(text(record, "key"), format!("\"{DEPLOYMENT_KEY}\""));
    let example = serde_json::to_value(example_deployment()).unwrap();
    assert_eq!(object_keys(attr(record, "content")), keys(&example));
    // Each function's limits are its own Terraform variables.
    let content = attr(record, "content").to_string();
    for (f, limits) in [
        ("worker", FunctionLimits::WORKER),
        ("stitch", FunctionLimits::STITCH),
    ] {
        let limits = serde_json::to_value(limits).unwrap();
        for (field, var) in [
            ("timeout_secs", "timeout_seconds"),
            ("memory_mb", "memory_mb"),
        ] {
            assert!(
                content.contains(&format!("{field} = var.{f}_{var}")),
                "{f}.{field} is not var.{f}_{var}: {content}"
            );
            let default = text(
                block(&tf, "variable", &[&format!("{f}_{var}")]).body(),
                "default",
            );
            assert_eq!(
                default,
                limits[field].to_string(),
                "FunctionLimits::{} .{field} is not Terraform's default",
                f.to_uppercase()
            );
        }
    }
    let fleet = serde_json::to_value(Fleet::default()).unwrap();
    assert_eq!(keys(&fleet), FLEET_FIELDS.map(String::from).into());
    for field in FLEET_FIELDS {
        assert!(
            content.contains(&format!("{field} = var.{field}")),
            "fleet.{field} is not var.{field}: {content}"
        );
        let default = text(block(&tf, "variable", &[field]).body(), "default");
        assert_eq!(
            default,
            fleet[field].to_string(),
            "Fleet::default().{field} is not Terraform's default"
        );
    }
}

/// A deployment record with every field set, for comparing field names.
fn example_deployment() -> Deployment {
    let limits = FunctionLimits {
        timeout_secs: 1,
        memory_mb: 1,
    };
    Deployment {
        version: 1,
        bucket: String::new(),
        region: String::new(),
        tiles_queue_url: String::new(),
        tiles_dlq_url: String::new(),
        stitch_queue_url: String::new(),
        stitch_dlq_url: String::new(),
        explore_queue_url: Some(String::new()),
        worker: limits,
        stitch: limits,
        fleet: Fleet::default(),
    }
}

/// The fleet's fields are Terraform variables of the same names, and
/// `Fleet::default()` holds their defaults.
const FLEET_FIELDS: [&str; 4] = [
    "architecture",
    "worker_max_concurrency",
    "worker_batch_size",
    "job_retention_days",
];

/// The keys of a JSON object.
fn keys(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

/// IAM's `*` matches any run of characters, `/` included.
fn glob(pattern: &str, key: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == key,
        Some((head, rest)) => {
            key.starts_with(head)
                && (0..=key.len() - head.len()).any(|i| glob(rest, &key[head.len() + i..]))
        }
    }
}

/// A function's policy: for each action, the object-key patterns it allows.
fn policy(tf: &Body, name: &str) -> BTreeMap<String, Vec<String>> {
    let doc = block(tf, "data", &["aws_iam_policy_document", name]).body();
    let mut allowed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for statement in doc.blocks().filter(|b| b.identifier() == "statement") {
        let s = statement.body();
        let mut resources: Vec<String> = strings(attr(s, "resources"))
            .into_iter()
            .map(|r| match r.strip_prefix("local.") {
                Some(name) => local(tf, name).to_string(),
                None => r,
            })
            .map(|r| {
                r.trim_matches('"')
                    .replace("${local.bucket_arn}", "BUCKET")
                    .replace("${aws_s3_bucket.jobs.arn}", "BUCKET")
                    .replace("local.bucket_arn", "BUCKET")
                    .replace("aws_s3_bucket.jobs.arn", "BUCKET")
            })
            .collect();
        // A listing is allowed on the bucket for the prefixes in its
        // condition, if it has one.
        if let Some(condition) = s.blocks().find(|b| b.identifier() == "condition") {
            assert_eq!(text(condition.body(), "variable"), "\"s3:prefix\"");
            resources = strings(attr(condition.body(), "values"))
                .into_iter()
                .map(|p| format!("BUCKET/{}", p.trim_matches('"')))
                .collect();
        } else if resources == ["BUCKET"] {
            // A listing of the bucket itself, unconditioned: any prefix.
            resources = vec!["BUCKET/*".to_string()];
        }
        let actions = match attr(s, "actions") {
            Expression::Traversal(_) => strings(local(tf, "consume_queue")),
            other => strings(other),
        };
        for action in actions {
            allowed
                .entry(action.trim_matches('"').to_string())
                .or_default()
                .extend(resources.iter().cloned());
        }
    }
    allowed
}

fn allows(policy: &BTreeMap<String, Vec<String>>, action: &str, key: &str) -> bool {
    let key = format!("BUCKET/{key}");
    policy
        .get(action)
        .is_some_and(|patterns| patterns.iter().any(|p| glob(p, &key)))
}

#[test]
fn each_role_allows_what_its_function_does_and_no_more() {
    let tf = terraform();
    let job = JobId::parse("0123456789abcdef0123").unwrap();
    let range = mandel_core::CountRange { min: 3, max: 2000 };
    let tile = job.tile_key(TileId::new(3, 4), range, mandel_core::CountWidth::U16);
    let deep_tile = job.tile_key(TileId::new(3, 4), range, mandel_core::CountWidth::U32);
    let worker = policy(&tf, "worker");
    let stitch = policy(&tf, "stitch");

    // The worker reads the record, params and cancel marker, writes tiles
    // and failure records, lists its tiles.
    assert!(allows(&worker, "s3:GetObject", DEPLOYMENT_KEY));
    assert!(allows(&worker, "s3:GetObject", &job.params_key()));
    assert!(allows(&worker, "s3:GetObject", &job.cancelled_key()));
    assert!(allows(&worker, "s3:PutObject", &tile));
    assert!(allows(&worker, "s3:PutObject", &deep_tile));
    assert!(allows(&worker, "s3:PutObject", &job.row_key(3, range)));
    // A deep job's reference orbit: computed and read by workers, read by
    // the stitch (a damaged tile is rendered again), never written by it.
    for key in [
        job.reference_points_key(0),
        job.reference_state_key(3),
        job.reference_key(),
    ] {
        assert!(
            allows(&worker, "s3:PutObject", &key),
            "worker cannot write {key}"
        );
        assert!(
            allows(&worker, "s3:GetObject", &key),
            "worker cannot read {key}"
        );
        assert!(
            allows(&stitch, "s3:GetObject", &key),
            "stitch cannot read {key}"
        );
        assert!(
            !allows(&stitch, "s3:PutObject", &key),
            "stitch may write {key}"
        );
    }
    for what in [Failed::Tile(TileId::new(3, 4)), Failed::Job, Failed::Stitch] {
        assert!(allows(&worker, "s3:PutObject", &job.failed_key(what)));
    }
    assert!(allows(&worker, "s3:ListBucket", &job.tiles_prefix()));
    assert!(allows(&worker, "s3:ListBucket", &job.row_prefix(12)));
    assert!(allows(&worker, "s3:ListBucket", &job.rows_prefix()));
    for key in [
        job.params_key(),
        job.result_key(),
        job.image_key(),
        job.counts_key(),
        job.cancelled_key(),
    ] {
        assert!(
            !allows(&worker, "s3:PutObject", &key),
            "worker may write {key}"
        );
    }
    assert!(!allows(&worker, "s3:GetObject", &job.result_key()));
    for key in [
        job.estimate_key(),
        job.stats_key(),
        job.report_key(),
        job.pyramid_pack_key(),
    ] {
        assert!(
            !allows(&worker, "s3:PutObject", &key),
            "worker may write {key}"
        );
    }
    assert_eq!(worker["sqs:SendMessage"], ["aws_sqs_queue.stitch.arn"]);
    assert_eq!(
        worker["sqs:ReceiveMessage"],
        ["aws_sqs_queue.tiles.arn", "aws_sqs_queue.explore.arn"]
    );

    // The stitch reads tiles, params, results and the cancel marker, writes
    // the three outputs, re-rendered tiles and its failure record.
    for key in [
        DEPLOYMENT_KEY,
        &job.params_key(),
        &tile,
        &job.result_key(),
        &job.cancelled_key(),
        &job.estimate_key(),
    ] {
        assert!(
            allows(&stitch, "s3:GetObject", key),
            "stitch cannot read {key}"
        );
    }
    for key in [
        job.image_key(),
        job.counts_key(),
        job.result_key(),
        tile.clone(),
        job.failed_key(Failed::Stitch),
        job.stitching_key(),
        job.stats_key(),
        job.report_key(),
        job.pyramid_pack_key(),
    ] {
        assert!(
            allows(&stitch, "s3:PutObject", &key),
            "stitch cannot write {key}"
        );
    }
    for key in [
        job.params_key(),
        job.cancelled_key(),
        job.estimate_key(),
        job.failed_key(Failed::Tile(TileId::new(3, 4))),
    ] {
        assert!(
            !allows(&stitch, "s3:PutObject", &key),
            "stitch may write {key}"
        );
    }
    for key in [
        job.image_key(),
        job.counts_key(),
        job.pyramid_pack_key(),
        job.stats_key(),
    ] {
        assert!(allows(&stitch, "s3:AbortMultipartUpload", &key));
    }
    // The pyramid is one object: nothing else goes beside it.
    let beside = format!("{}pyramid/{}", job.prefix(), pyramid::VIEWER);
    assert!(!allows(&stitch, "s3:PutObject", &beside));
    assert!(!allows(&stitch, "s3:AbortMultipartUpload", &tile));
    assert!(!allows(&stitch, "s3:PutObject", &job.row_key(3, range)));
    assert!(!stitch.contains_key("sqs:SendMessage"));
    assert_eq!(stitch["sqs:ReceiveMessage"], ["aws_sqs_queue.stitch.arn"]);

    // The laptop user submits, waits, downloads, cancels and resumes.
    let client = policy(&tf, "client");
    for key in [
        DEPLOYMENT_KEY,
        &job.params_key(),
        &job.result_key(),
        &job.image_key(),
        &job.counts_key(),
        &job.failed_key(Failed::Stitch),
        &tile,
        &job.pyramid_pack_key(),
    ] {
        assert!(
            allows(&client, "s3:GetObject", key),
            "client cannot read {key}"
        );
    }
    for key in [job.params_key(), job.estimate_key(), job.cancelled_key()] {
        assert!(
            allows(&client, "s3:PutObject", &key),
            "client cannot write {key}"
        );
    }
    for key in [
        job.failed_key(Failed::Job),
        job.cancelled_key(),
        job.stitching_key(),
    ] {
        assert!(
            allows(&client, "s3:DeleteObject", &key),
            "client cannot delete {key}"
        );
    }
    for key in [
        tile.clone(),
        job.result_key(),
        job.image_key(),
        job.counts_key(),
        job.stats_key(),
        job.report_key(),
        job.pyramid_pack_key(),
    ] {
        assert!(
            !allows(&client, "s3:PutObject", &key),
            "client may write {key}"
        );
        assert!(
            !allows(&client, "s3:DeleteObject", &key),
            "client may delete {key}"
        );
    }
    assert!(allows(&client, "s3:ListBucket", &job.prefix()));
    assert_eq!(
        client["sqs:SendMessage"],
        [
            "aws_sqs_queue.tiles.arn",
            "aws_sqs_queue.stitch.arn",
            "aws_sqs_queue.explore.arn"
        ]
    );
    assert!(!client.contains_key("sqs:ReceiveMessage"));

    // Nobody gets a wildcard action.
    for (name, p) in [
        ("worker", &worker),
        ("stitch", &stitch),
        ("client", &client),
    ] {
        assert!(p.keys().all(|a| !a.contains('*')), "{name}: {:?}", p.keys());
    }
}

#[test]
fn variables_cover_the_knobs_and_outputs_give_the_render_command() {
    let tf = terraform();
    for name in [
        "region",
        "name_prefix",
        "architecture",
        "worker_memory_mb",
        "worker_timeout_seconds",
        "stitch_memory_mb",
        "stitch_timeout_seconds",
        "worker_max_concurrency",
        "job_retention_days",
    ] {
        block(&tf, "variable", &[name]);
    }
    let arch = block(&tf, "variable", &["architecture"]).body();
    assert_eq!(text(arch, "default"), "\"x86_64\"");
    let command = text(block(&tf, "output", &["render_command"]).body(), "value");
    assert!(command.contains("mandel-orchestrate --bucket ${aws_s3_bucket.jobs.id}"));
}

/// checkov passes, with every skipped check justified beside it.
#[test]
fn checkov_passes() {
    let out = Command::new("checkov")
        .args(["-d", infra_dir().to_str().unwrap()])
        .args([
            "--framework",
            "terraform",
            "--compact",
            "--skip-download",
            "-o",
            "json",
        ])
        .output()
        .expect(
            "checkov is not on PATH: run with bash scripts/test.sh (infra/tools.sh installs it)",
        );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "checkov output: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let summary = &report["summary"];
    assert_eq!(
        summary["failed"], 0,
        "{:#}",
        report["results"]["failed_checks"]
    );
    assert_eq!(summary["parsing_errors"], 0);
    assert!(summary["passed"].as_u64().unwrap() > 50, "{summary}");
    for skipped in report["results"]["skipped_checks"].as_array().unwrap() {
        let reason = skipped["check_result"]["suppress_comment"]
            .as_str()
            .unwrap_or("");
        assert!(reason.len() > 20, "unjustified skip: {skipped:#}");
    }
    assert!(out.status.success());
}

/// The deployment record is written in two more places than the struct
/// that reads it: Terraform's `aws_s3_object` (checked above) and
/// LocalStack's bootstrap. The record LocalStack holds has exactly the
/// struct's fields, and its limits are Terraform's defaults.
#[test]
fn localstack_writes_the_record_terraform_writes() {
    use mandel_pipeline::ObjectStore;
    let bucket = mandel_e2e::localstack_bucket();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let clients = rt.block_on(mandel_aws::AwsClients::from_env());
    let store = mandel_aws::S3Store::new(clients.s3, &bucket);
    let body = rt.block_on(store.get(DEPLOYMENT_KEY)).unwrap().body;
    let record: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let example = serde_json::to_value(example_deployment()).unwrap();
    assert_eq!(keys(&record), keys(&example));
    let tf = terraform();
    for f in ["worker", "stitch"] {
        assert_eq!(keys(&record[f]), keys(&example[f]));
        for (field, var) in [
            ("timeout_secs", "timeout_seconds"),
            ("memory_mb", "memory_mb"),
        ] {
            let default = text(
                block(&tf, "variable", &[&format!("{f}_{var}")]).body(),
                "default",
            );
            assert_eq!(
                record[f][field].to_string(),
                default,
                "LocalStack's {f}.{field} is not Terraform's default"
            );
        }
    }
    assert_eq!(
        record["fleet"],
        serde_json::to_value(Fleet::default()).unwrap(),
        "LocalStack's fleet is not Terraform's defaults"
    );
}

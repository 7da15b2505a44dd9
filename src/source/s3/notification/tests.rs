use super::*;

/// An S3 event notification as S3 sends it to SQS (the AWS "Event message
/// structure" example, version 2.1), for one key.
fn s3_event(event_name: &str, key: &str, version: Option<&str>) -> String {
    let version = version.map(|v| format!(r#","versionId":"{v}""#)).unwrap_or_default();
    format!(
        r#"{{"Records":[{{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-west-2",
        "eventTime":"2021-11-12T00:00:00.000Z","eventName":"{event_name}",
        "userIdentity":{{"principalId":"AWS:AIDAEXAMPLE"}},"requestParameters":{{"sourceIPAddress":"10.0.0.1"}},
        "responseElements":{{"x-amz-request-id":"C3D13FE58DE4C810","x-amz-id-2":"FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"}},
        "s3":{{"s3SchemaVersion":"1.0","configurationId":"flow-logs","bucket":{{"name":"amzn-s3-demo-bucket",
        "ownerIdentity":{{"principalId":"A3NL1KOZZKExample"}},"arn":"arn:aws:s3:::amzn-s3-demo-bucket"}},
        "object":{{"key":"{key}","size":1024,"eTag":"d41d8cd98f00b204e9800998ecf8427e"{version},
        "sequencer":"0055AED6DCD90281E5"}}}}}}]}}"#
    )
}

/// The EventBridge "Object Created" example of the AWS "EventBridge event
/// message structure" page, for one key.
fn eventbridge(detail_type: &str, key: &str) -> String {
    format!(
        r#"{{"version":"0","id":"17793124-05d4-b198-2fde-7ededc63b103","detail-type":"{detail_type}",
        "source":"aws.s3","account":"111122223333","time":"2021-11-12T00:00:00Z","region":"ca-central-1",
        "resources":["arn:aws:s3:::amzn-s3-demo-bucket1"],"detail":{{"version":"0",
        "bucket":{{"name":"amzn-s3-demo-bucket1"}},"object":{{"key":"{key}","size":5,
        "etag":"b1946ac92492d2347c6235b4d2611184","version-id":"IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
        "sequencer":"617f08299329d189"}},"request-id":"N4N7GDK58NMKJ12R","requester":"123456789012",
        "source-ip-address":"1.2.3.4","reason":"PutObject"}}}}"#
    )
}

/// An SNS notification envelope around `message`.
fn sns(message: &str) -> String {
    serde_json::json!({
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:us-west-2:123456789012:flow-logs",
        "Subject": "Amazon S3 Notification",
        "Message": message,
        "Timestamp": "2021-11-12T00:00:01.000Z",
        "SignatureVersion": "1",
    })
    .to_string()
}

fn objects(body: &str) -> Vec<ObjectRef> {
    match parse(body.as_bytes()) {
        Ok(Notification::Objects(o)) => o,
        other => panic!("{other:?} for {body}"),
    }
}

fn error(body: &[u8]) -> NotificationError {
    match parse(body) {
        Err(e) => e,
        other => panic!("{other:?}"),
    }
}

#[test]
fn s3_notification_keys_are_url_decoded() {
    let key = "AWSLogs/aws-account-id%3D123456789010/vpcflowlogs/my+flow+logs/caf%C3%A9%2B1%25.log.gz";
    let o = objects(&s3_event("ObjectCreated:Put", key, None));
    assert_eq!(o.len(), 1);
    let o = &o[0];
    assert_eq!(o.bucket, "amzn-s3-demo-bucket");
    assert_eq!(o.key, "AWSLogs/aws-account-id=123456789010/vpcflowlogs/my flow logs/café+1%.log.gz");
    assert_eq!(o.size, Some(1024));
    assert_eq!(o.version_id, None);
    assert_eq!(o.etag.as_deref(), Some("d41d8cd98f00b204e9800998ecf8427e"));
    assert_eq!(o.sequencer.as_deref(), Some("0055AED6DCD90281E5"));
    assert_eq!(o.event_time_ms, Some(1_636_675_200_000));
    assert_eq!(o.shape, Shape::S3);
}

#[test]
fn every_create_event_counts_and_the_others_are_ignored() {
    for name in [
        "ObjectCreated:Put",
        "ObjectCreated:Post",
        "ObjectCreated:Copy",
        "ObjectCreated:CompleteMultipartUpload",
        "s3:ObjectCreated:Put",
    ] {
        assert_eq!(objects(&s3_event(name, "a.log.gz", None)).len(), 1, "{name}");
    }
    for name in ["ObjectRemoved:Delete", "ObjectRestore:Completed", "ObjectTagging:Put", "LifecycleExpiration:Delete"] {
        assert_eq!(
            parse(s3_event(name, "a.log.gz", None).as_bytes()),
            Ok(Notification::Ignored(Ignored::NotCreated)),
            "{name}"
        );
    }
    assert_eq!(parse(br#"{"Records":[]}"#), Ok(Notification::Ignored(Ignored::NoRecords)));
    // A message of several records keeps the creations only.
    let put: Value = serde_json::from_str(&s3_event("ObjectCreated:Put", "a.log.gz", None)).unwrap();
    let del: Value = serde_json::from_str(&s3_event("ObjectRemoved:Delete", "b.log.gz", None)).unwrap();
    let both = serde_json::json!({"Records": [del["Records"][0], put["Records"][0]]}).to_string();
    let o = objects(&both);
    assert_eq!(o.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["a.log.gz"]);
}

#[test]
fn test_events_are_ignored_bare_or_in_sns() {
    let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2021-11-12T00:00:00.000Z","Bucket":"amzn-s3-demo-bucket","RequestId":"5582815E1AEA5ADF","HostId":"8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"}"#;
    assert_eq!(parse(test.as_bytes()), Ok(Notification::Ignored(Ignored::TestEvent)));
    assert_eq!(parse(sns(test).as_bytes()), Ok(Notification::Ignored(Ignored::TestEvent)));
}

#[test]
fn sns_wraps_s3_and_eventbridge_events() {
    let o = objects(&sns(&s3_event("ObjectCreated:Put", "x/a+b.log.gz", Some("3HL4kqtJlcpXroDTDmJ"))));
    assert_eq!((o[0].key.as_str(), o[0].shape), ("x/a b.log.gz", Shape::SnsS3));
    assert_eq!(o[0].version_id.as_deref(), Some("3HL4kqtJlcpXroDTDmJ"));
    let o = objects(&sns(&eventbridge("Object Created", "x/a+b.log.gz")));
    assert_eq!((o[0].key.as_str(), o[0].shape), ("x/a+b.log.gz", Shape::SnsEventBridge));
    // SNS in SNS is not something AWS sends.
    assert_eq!(error(sns(&sns(&eventbridge("Object Created", "k"))).as_bytes()), NotificationError::TooDeep);
    assert_eq!(error(br#"{"Type":"Notification"}"#), NotificationError::Missing("Message"));
    assert_eq!(error(br#"{"Type":"Notification","Message":"not json"}"#).reason(), "bad_json");
}

#[test]
fn eventbridge_keys_are_taken_as_they_are() {
    let o = objects(&eventbridge("Object Created", "AWSLogs/my logs/a+b%20c.log.gz"));
    let o = &o[0];
    assert_eq!(o.bucket, "amzn-s3-demo-bucket1");
    assert_eq!(o.key, "AWSLogs/my logs/a+b%20c.log.gz");
    assert_eq!((o.size, o.shape), (Some(5), Shape::EventBridge));
    assert_eq!(o.version_id.as_deref(), Some("IYV3p45BT0ac8hjHg1houSdS1a.Mro8e"));
    assert_eq!(o.etag.as_deref(), Some("b1946ac92492d2347c6235b4d2611184"));
    assert_eq!(o.event_time_ms, Some(1_636_675_200_000));
    for other in ["Object Deleted", "Object Restore Completed", "Object Tags Added"] {
        assert_eq!(parse(eventbridge(other, "k").as_bytes()), Ok(Notification::Ignored(Ignored::NotCreated)));
    }
    let ec2 = eventbridge("Object Created", "k").replace("\"aws.s3\"", "\"aws.ec2\"");
    assert_eq!(error(ec2.as_bytes()), NotificationError::UnknownShape);
}

#[test]
fn unreadable_bodies_are_errors_by_reason() {
    let big = vec![b' '; MAX_BODY_BYTES + 1];
    assert_eq!(error(&big), NotificationError::TooLarge { len: MAX_BODY_BYTES + 1 });
    assert_eq!(error(b"").reason(), "bad_json");
    assert_eq!(error(b"{\"Records\":[").reason(), "bad_json");
    assert_eq!(error(b"[]"), NotificationError::UnknownShape);
    assert_eq!(error(br#"{"hello":"world"}"#), NotificationError::UnknownShape);
    assert_eq!(error(br#"{"Records":{}}"#).reason(), "bad_json");
    let record: Value = serde_json::from_str(&s3_event("ObjectCreated:Put", "k", None)).unwrap();
    let many = serde_json::json!({ "Records": vec![record["Records"][0].clone(); MAX_RECORDS + 1] }).to_string();
    assert!(many.len() < MAX_BODY_BYTES);
    assert_eq!(error(many.as_bytes()), NotificationError::TooManyRecords { count: MAX_RECORDS + 1 });
    let no_key = s3_event("ObjectCreated:Put", "k", None).replace(r#""key":"k","#, "");
    assert_eq!(error(no_key.as_bytes()), NotificationError::Missing("Records[].s3.object.key"));
    let no_name = s3_event("ObjectCreated:Put", "k", None).replace(r#""eventName":"ObjectCreated:Put","#, "");
    assert_eq!(error(no_name.as_bytes()), NotificationError::Missing("Records[].eventName"));
    for bad in ["a%G1", "a%4", "a%", "%FF%FE", ""] {
        let e = error(s3_event("ObjectCreated:Put", bad, None).as_bytes());
        assert_eq!(e.reason(), "invalid_field", "{bad}: {e}");
    }
    let long = "k".repeat(MAX_KEY_BYTES + 1);
    assert_eq!(error(s3_event("ObjectCreated:Put", &long, None).as_bytes()).reason(), "invalid_field");
    let negative = s3_event("ObjectCreated:Put", "k", None).replace("\"size\":1024", "\"size\":-1");
    assert_eq!(error(negative.as_bytes()).reason(), "invalid_field");
    let slash = eventbridge("Object Created", "k").replace("amzn-s3-demo-bucket1\"}", "a/b\"}");
    assert_eq!(error(slash.as_bytes()).reason(), "invalid_field");
}

#[test]
fn errors_do_not_echo_the_body() {
    let e = error(b"{\"Records\": secret-token-123}");
    assert!(!e.to_string().contains("secret"), "{e}");
}

#[test]
fn url_decoding() {
    assert_eq!(url_decode("a+b%20c").unwrap(), "a b c");
    assert_eq!(url_decode("%2B%2b%25").unwrap(), "++%");
    assert_eq!(url_decode("%E6%97%A5%E6%9C%AC/%F0%9F%98%80").unwrap(), "日本/😀");
    assert_eq!(url_decode("plain/key.log.gz").unwrap(), "plain/key.log.gz");
    assert!(url_decode("%C3").is_err());
    assert!(url_decode(&"%41".repeat(MAX_KEY_BYTES + 1)).is_err());
}

#[test]
fn event_times() {
    assert_eq!(parse_time_ms("1970-01-01T00:00:00.000Z"), Some(0));
    assert_eq!(parse_time_ms("2021-11-12T00:00:00Z"), Some(1_636_675_200_000));
    assert_eq!(parse_time_ms("2024-02-29T12:00:00.5Z"), Some(1_709_208_000_500));
    assert_eq!(parse_time_ms("2000-03-01T23:59:59.999999Z"), Some(951_955_199_999));
    for bad in [
        "",
        "2021-11-12",
        "2021-11-12T00:00:00",
        "2021-11-12T00:00:00+01:00",
        "2021-13-01T00:00:00Z",
        "2021-11-12T24:00:00Z",
        "2021-11-12T00:00:00.Z",
        "1969-12-31T23:59:59Z",
        "2021-11-12T00:00:00.0000000001Z",
        "２021-11-12T00:00:00Z",
    ] {
        assert_eq!(parse_time_ms(bad), None, "{bad}");
    }
}

#[test]
fn identity_prefers_version_then_etag_then_sequencer() {
    let versioned = &objects(&s3_event("ObjectCreated:Put", "k", Some("v1")))[0];
    assert_eq!(versioned.id().tag, Tag::Version("v1".into()));
    // Version `null` (a bucket with versioning suspended) says nothing.
    let null = &objects(&s3_event("ObjectCreated:Put", "k", Some("null")))[0];
    assert_eq!(null.id().tag, Tag::ETag("d41d8cd98f00b204e9800998ecf8427e".into()));
    let seq_only =
        s3_event("ObjectCreated:Put", "k", None).replace(r#""eTag":"d41d8cd98f00b204e9800998ecf8427e","#, "");
    assert_eq!(objects(&seq_only)[0].id().tag, Tag::Sequencer("0055AED6DCD90281E5".into()));
    let quoted = s3_event("ObjectCreated:Put", "k", None)
        .replace(r#""eTag":"d41d8cd98f00b204e9800998ecf8427e""#, r#""eTag":"\"abc-2\"""#);
    assert_eq!(objects(&quoted)[0].etag.as_deref(), Some("abc-2"));

    // One object announced twice, and through SNS: one identity.
    let a = objects(&s3_event("ObjectCreated:Put", "a%20b", Some("v1")))[0].id();
    let b = objects(&sns(&s3_event("ObjectCreated:CompleteMultipartUpload", "a+b", Some("v1"))))[0].id();
    assert_eq!(a, b);
    assert_eq!(a.to_string(), "v2:v1/amzn-s3-demo-bucket/a b");
    let other_version = objects(&s3_event("ObjectCreated:Put", "a%20b", Some("v2")))[0].id();
    assert_ne!(a, other_version);
}

#[test]
fn string_forms_are_unambiguous_and_bounded() {
    let id = |bucket: &str, key: &str, tag: Tag| ObjectId { bucket: bucket.into(), key: key.into(), tag };
    let forms = [
        id("b", "k/x", Tag::ETag("e".into())).to_string(),
        id("b", "k/x", Tag::Sequencer("e".into())).to_string(),
        id("b", "k/x", Tag::None).to_string(),
        id("b", "x", Tag::ETag("e/b/k".into())).to_string(),
        id("b", "k/x", Tag::Version("e".into())).to_string(),
    ];
    for (i, a) in forms.iter().enumerate() {
        for b in &forms[i + 1..] {
            assert_ne!(a, b);
        }
    }
    assert_eq!(forms[2], "n0:/b/k/x");
    let short = id("b", "k", Tag::ETag("e".into()));
    assert_eq!(short.storage_key(), short.to_string());
    let long = id("b", &"k".repeat(MAX_KEY_BYTES), Tag::Version("v".repeat(200)));
    let key = long.storage_key();
    assert!(key.starts_with("sha256:") && key.len() == 7 + 64, "{key}");
    assert_eq!(key, long.clone().storage_key());
    assert_ne!(key, id("b", &"k".repeat(MAX_KEY_BYTES), Tag::Version("w".repeat(200))).storage_key());
}

proptest::proptest! {
    /// Any body gives an outcome, never a panic; a valid body with one byte
    /// changed too.
    #[test]
    fn any_body_is_an_outcome(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        let _ = parse(&body);
    }

    #[test]
    fn any_change_to_a_valid_body_is_an_outcome(at in 0usize..2000, byte in proptest::num::u8::ANY, wrap in proptest::bool::ANY) {
        let body = s3_event("ObjectCreated:Put", "a%20b+c.log.gz", Some("v1"));
        let body = if wrap { sns(&body) } else { body };
        let mut bytes = body.into_bytes();
        let at = at % bytes.len();
        bytes[at] = byte;
        let _ = parse(&bytes);
    }

    /// Decoding undoes form encoding (`+` for space, `%XX` for the rest).
    #[test]
    fn url_decoding_undoes_form_encoding(key in "\\PC{1,64}") {
        let mut encoded = String::new();
        for b in key.bytes() {
            match b {
                b' ' => encoded.push('+'),
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => encoded.push(b as char),
                _ => encoded.push_str(&format!("%{b:02X}")),
            }
        }
        proptest::prop_assert_eq!(url_decode(&encoded).unwrap(), key);
    }
}

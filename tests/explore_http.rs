//! The explorer's HTTP rules: it answers its own page only (a request for
//! another Host, a DNS-rebound name, or from another site's page, its
//! Origin, is refused with 403 before anything is rendered, so a page the
//! user happens to visit cannot spend this machine's cores, or the fleet's
//! money, on tiles); and a tile's URL names everything its bytes depend
//! on, so a browser may keep it for good.

use std::path::Path;

use mandel_e2e::{Running, binary, cached_tiles, http_get, http_get_with, start_explorer};

fn explorer(cache: &Path, args: &[&str]) -> (Running, String) {
    start_explorer(
        std::process::Command::new(binary("mandel-explore"))
            .arg("--cache")
            .arg(cache)
            .args(args),
    )
}

#[test]
fn requests_from_other_sites_are_refused_before_any_render() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (_explorer, url) = explorer(&cache, &[]);
    let own = url.trim_start_matches("http://").trim_end_matches('/');
    let port = own.rsplit(':').next().unwrap();
    let tile = format!("{url}tiles/3/2/3.png?iter=300");

    // A drive-by page: the browser sends that page's Origin; through a
    // rebound DNS name, that name as Host. Neither renders anything.
    let evil_host = format!("evil.example:{port}");
    let refused = [
        vec![("Origin", "http://evil.example")],
        vec![("Origin", "null")],
        vec![("Host", evil_host.as_str())],
        vec![
            ("Host", evil_host.as_str()),
            ("Origin", "http://evil.example"),
        ],
        // Its own port on another name is not its own either.
        vec![("Origin", "https://127.0.0.1")],
    ];
    for headers in &refused {
        let r = http_get_with(&tile, headers);
        assert_eq!(r.status, 403, "{headers:?} was let through");
        let why = String::from_utf8_lossy(&r.body);
        assert!(why.contains("this explorer answers"), "{why}");
        assert_eq!(r.headers.get("x-mandel-tile"), None);
    }
    let r = http_get_with(&url, &[("Host", &evil_host)]);
    assert_eq!(
        r.status, 403,
        "the page itself is refused to a rebound name"
    );
    assert_eq!(cached_tiles(&cache), 0, "a refused request rendered a tile");

    // Its own page, by either of its names, with or without an Origin.
    let own_origin = format!("http://{own}");
    let localhost = format!("localhost:{port}");
    let allowed = [
        vec![],
        vec![("Origin", own_origin.as_str())],
        vec![("Host", localhost.as_str())],
    ];
    for headers in &allowed {
        let r = http_get_with(&tile, headers);
        assert_eq!(
            r.status,
            200,
            "{headers:?}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.headers["content-type"], "image/png");
    }
    assert_eq!(http_get(&url).status, 200);
    assert!(cached_tiles(&cache) > 0, "the allowed tile was cached");
}

/// The page's tile URLs as its template makes them, for tile 3/2/3.
fn page_tile_url(url: &str) -> String {
    let page = String::from_utf8(http_get(url).body).unwrap();
    let start = page
        .find("/tiles/{z}/{x}/{y}.png")
        .expect("a tile template");
    let template = &page[start..start + page[start..].find('"').unwrap()];
    format!(
        "{}{}",
        url.trim_end_matches('/'),
        template.replace("{z}/{x}/{y}", "3/2/3")
    ) + "&iter=300"
}

#[test]
fn a_tiles_url_names_its_colormap_and_contract() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (first, url) = explorer(&cache, &[]);
    let tile = page_tile_url(&url);
    assert!(tile.contains("cm=twilight_shifted&v="), "{tile}");
    let r = http_get(&tile);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let twilight = r.body;
    // A URL that does not name them is served, but not kept.
    let bare = http_get(&format!("{url}tiles/3/2/3.png?iter=300"));
    assert_eq!(bare.body, twilight);
    assert_eq!(bare.headers["cache-control"], "no-cache");
    // Another colormap's or contract's URL is not this server's tile.
    let other = http_get(&tile.replace("cm=twilight_shifted", "cm=viridis"));
    assert_eq!(other.status, 404);
    assert!(String::from_utf8_lossy(&other.body).contains("draws cm=twilight_shifted"));
    let v = tile.split("v=").nth(1).unwrap().split('&').next().unwrap();
    let later: u32 = v.parse::<u32>().unwrap() + 1;
    let other = http_get(&tile.replace(&format!("v={v}"), &format!("v={later}")));
    assert_eq!(other.status, 404);
    drop(first);

    // The same cache, restarted with another colormap: the page asks for
    // another URL, and it holds other bytes.
    let (_second, url) = explorer(&cache, &["--colormap", "viridis"]);
    let tile2 = page_tile_url(&url);
    assert!(tile2.contains("cm=viridis&v="), "{tile2}");
    let r = http_get(&tile2);
    assert_eq!(r.status, 200);
    assert_ne!(r.body, twilight);
    let old_path = &tile[tile.find("/tiles/").unwrap() + 1..];
    assert_eq!(http_get(&format!("{url}{old_path}")).status, 404);
}

/// Past zoom 45 a tile's URL is deep: `x` and `y` are integers of any
/// length. The explorer renders it by perturbation from its region's
/// orbit: the same bytes as a direct render of that tile, then from its
/// cache; an address outside the deep world is refused naming the rule.
#[test]
fn a_deep_tile_url_draws_the_deep_render_of_that_tile() {
    use mandel_core::Colormap;
    use mandel_core::deep::DeepView;
    use mandel_core::explore::{self, DeepTile};
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (_explorer, url) = explorer(&cache, &[]);
    // Zoom 2^200 (about 1e60) on the path to the seahorse valley's spiral.
    let view = DeepView::parse(
        "-0.743643887037158704752191506114774",
        "0.131825904205311970493132056385139",
        "1",
    )
    .unwrap();
    let tile = DeepTile::at(&view, 200).unwrap();
    let address = tile.to_string();
    let x_y = address.split_once('/').unwrap().1;
    let link = format!(
        "{url}tiles/{address}.png?cm=twilight_shifted&v={}&iter=3000",
        mandel_core::kernel::CONTRACT_VERSION
    );
    assert!(x_y.len() > 100, "x and y have dozens of digits: {x_y}");
    let r = http_get(&link);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.headers["x-mandel-tile"], "rendered");
    let orbit = tile.region().orbit(3000);
    let (counts, _) = tile.render(3000, &orbit);
    let direct = explore::deep_tile_png(&counts, 3000, Colormap::TwilightShifted).unwrap();
    assert_eq!(r.body, direct, "the deep tile's bytes");
    let again = http_get(&link);
    assert_eq!(again.headers["x-mandel-tile"], "cached");
    assert_eq!(again.body, direct);

    // Deep budgets go past a viewport job's 65535 (counts are u32).
    let big = link.replace("iter=3000", "iter=100000");
    let r = http_get(&big);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let orbit = tile.region().orbit(100_000);
    let (counts, _) = tile.render(100_000, &orbit);
    let direct = explore::deep_tile_png(&counts, 100_000, Colormap::TwilightShifted).unwrap();
    assert_eq!(r.body, direct, "the deep tile at 100,000 iterations");

    // 2^200 tiles a side: x = 2^200 is outside.
    let two_200 = "1606938044258990275541962092341162602522202993782792835301376";
    let outside = format!("{url}tiles/200/{two_200}/0.png");
    let r = http_get(&outside);
    assert_eq!(r.status, 400);
    assert!(
        String::from_utf8_lossy(&r.body).contains("below 2^200"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
}

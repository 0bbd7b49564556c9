//! Prints the graph of a policy file as DOT, or as SVG with `--svg`.
//!
//! ```text
//! cargo run -p microseg-graph --example render -- examples/three-tier.toml --svg > /tmp/g.svg
//! ```

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.iter().find(|a| !a.starts_with("--")) else {
        eprintln!("usage: render POLICY [--svg]");
        std::process::exit(2);
    };
    let policy = match microseg_core::Policy::from_file(path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let g = microseg_graph::graph(&policy);
    if args.iter().any(|a| a == "--svg") {
        match g.to_svg() {
            Ok(svg) => print!("{svg}"),
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        }
    } else {
        print!("{}", g.to_dot());
    }
}

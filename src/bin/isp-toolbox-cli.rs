//! `isp-toolbox-cli`: the command-line face of ISP Toolbox.

fn main() {
    match isp_toolbox::part::PartDb::builtin() {
        Ok(db) => {
            for p in db.all() {
                println!("{}", p.id);
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

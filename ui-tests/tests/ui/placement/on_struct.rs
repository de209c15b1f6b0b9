#[flammable::task]
struct NotAnImpl {
    width: usize,
}

fn main() {}

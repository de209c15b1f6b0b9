#[flammable::task]
struct NotAnImpl {
    width: usize,
}


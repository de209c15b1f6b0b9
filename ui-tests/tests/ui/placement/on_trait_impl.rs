struct Model;

#[flammable::task]
impl Default for Model {
    fn default() -> Self {
        Model
    }
}


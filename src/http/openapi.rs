//! The OpenAPI 3 description of the HTTP API, generated from the handlers' annotations so it
//! cannot drift from the code (a test checks every route is in it).

use axum::Json;
use utoipa::OpenApi;

use super::{account, admin, blobs, changes, data, rivet};

#[derive(OpenApi)]
#[openapi(
    info(title = "Hearth", description = "The REST view of Hearth's documents. Errors are JSON {code, message}; see PROTOCOL.md."),
    paths(
        account::signup, account::login, account::logout, account::me, account::sessions,
        account::delete_session, account::rivet_login, account::rivet_logout,
        data::document, data::get_root, data::get_data, data::put_data, data::patch_data,
        data::delete_data, data::batch, data::keys, rivet::store_list, rivet::store_get,
        rivet::store_put, rivet::store_delete,
        changes::changes, changes::events,
        admin::stats, admin::users, admin::disable, admin::enable, admin::backup_to_dir,
        admin::backup_download, admin::create_user, admin::reset_password, admin::grant_admin,
        admin::revoke_admin,
        blobs::upload, blobs::upload_named, blobs::download, blobs::delete, blobs::list,
    ),
    components(schemas(account::Credentials, account::TokenBody, data::BatchOp, admin::NewUser,
        admin::NewPassword)),
    modifiers(&Security),
    security(("bearer" = []), ("session_token" = [])),
)]
pub struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Session-Token"))),
        );
    }
}

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
